//! Quoting: the one place where text is inlined into SQL.
//!
//! * [`quote_ident`] and [`quote_literal`] (public, re-exported from
//!   [`rls`](crate::rls)) write the identifiers and literals of the policies,
//!   grants and schemas the crate generates (RLS, hardened mode, registry,
//!   outbox) and of the audit's findings.
//! * [`quote_setting_name`], [`push_literal`] and [`push_identifier`] write
//!   the `SET LOCAL` statements and the role name that open a tenant
//!   transaction, refusing what they cannot quote safely.
//!
//! The values are inlined rather than bound because a bound
//! `set_config($1, $2, true)` needs its own round trip, or a `SELECT` that is
//! parsed and planned every time; `SET LOCAL` in the same simple-query
//! message as `BEGIN` costs almost nothing. What makes inlining safe is that
//! `tenant-core` identifiers are ASCII letters, digits and `-_.:` only. This
//! module does not rely on that alone.

use crate::Error;

/// The longest identifier PostgreSQL keeps without truncating it.
const MAX_IDENT: usize = 63;

/// Checks a setting name and gives it quoted, part by part
/// (`app.current_tenant` becomes `"app"."current_tenant"`).
///
/// A name is two or more dot-separated parts, each `[a-z_][a-z0-9_]*` and at
/// most 63 bytes: PostgreSQL requires the dot for a custom setting, and lower
/// case avoids any doubt about case folding.
pub(crate) fn quote_setting_name(name: &str) -> Result<String, Error> {
    let bad = |reason| Error::InvalidSettingName {
        name: name.to_owned(),
        reason,
    };
    let mut parts = 0;
    let mut quoted = String::with_capacity(name.len() + 8);
    for part in name.split('.') {
        let mut chars = part.chars();
        match chars.next() {
            None => return Err(bad("a part between dots is empty")),
            Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
                return Err(bad(
                    "each part must start with a lower-case ASCII letter or `_`",
                ))
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(bad(
                "only lower-case ASCII letters, digits, `_` and `.` are allowed",
            ));
        }
        if part.len() > MAX_IDENT {
            return Err(bad("a part is longer than 63 bytes"));
        }
        if parts > 0 {
            quoted.push('.');
        }
        quoted.push('"');
        quoted.push_str(part);
        quoted.push('"');
        parts += 1;
    }
    if parts < 2 {
        return Err(bad(
            "a custom setting needs a prefix, as in `app.current_tenant`",
        ));
    }
    Ok(quoted)
}

/// Appends `value` as a standard SQL string literal.
///
/// Refuses anything outside printable ASCII (so no NUL, no control
/// characters, nothing a client encoding could reinterpret) and the
/// backslash (so the result means the same whether or not
/// `standard_conforming_strings` is on); doubles single quotes.
pub(crate) fn push_literal(out: &mut String, setting: &str, value: &str) -> Result<(), Error> {
    let bad = |reason| Error::UnsafeSettingValue {
        setting: setting.to_owned(),
        reason,
    };
    out.reserve(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => return Err(bad("it contains a backslash")),
            ' '..='~' => out.push(c),
            _ => return Err(bad("it contains a character outside printable ASCII")),
        }
    }
    out.push('\'');
    Ok(())
}

/// Appends `name` as a quoted SQL identifier (`"tenant_app"`, see
/// [`quote_ident`]). Refuses an empty name and a NUL, which PostgreSQL
/// cannot store.
pub(crate) fn push_identifier(out: &mut String, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::InvalidSettingName {
            name: name.to_owned(),
            reason: "an identifier must be non-empty and contain no NUL",
        });
    }
    write_ident(out, name);
    Ok(())
}

/// Quotes `ident` as a PostgreSQL identifier: wraps it in double quotes and
/// doubles every double quote inside, so the result always names exactly
/// `ident`, case and all.
///
/// ```
/// use tenant_sqlx::rls::quote_ident;
///
/// assert_eq!(quote_ident("tenant_id"), r#""tenant_id""#);
/// assert_eq!(quote_ident(r#"a"; DROP TABLE x; --"#), r#""a""; DROP TABLE x; --""#);
/// ```
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    write_ident(&mut out, ident);
    out
}

fn write_ident(out: &mut String, ident: &str) {
    out.push('"');
    for ch in ident.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

/// Quotes `value` as a PostgreSQL string literal that means `value` whatever
/// `standard_conforming_strings` is set to: single quotes are doubled, and a
/// value with a backslash is written as an `E'…'` literal with the
/// backslashes doubled (as PostgreSQL's own `quote_literal` does).
///
/// ```
/// use tenant_sqlx::rls::quote_literal;
///
/// assert_eq!(quote_literal("app.current_tenant"), "'app.current_tenant'");
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// assert_eq!(quote_literal(r"a\'b"), r"E'a\\''b'");
/// ```
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for ch in value.chars() {
        if ch == '\'' || ch == '\\' {
            out.push(ch);
        }
        out.push(ch);
    }
    out.push('\'');
    out
}

/// The `SET LOCAL` statement that puts `value` into `setting` for the
/// current transaction, with both quoted. Crate-private: nothing public
/// writes an arbitrary value into a tenant setting.
#[cfg(test)]
pub(crate) fn set_local_sql(setting: &str, value: &str) -> Result<String, Error> {
    let mut out = format!("SET LOCAL {} = ", quote_setting_name(setting)?);
    push_literal(&mut out, setting, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_quoted_or_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            ("acme", Some("'acme'")),
            ("", Some("''")),
            ("'", Some("''''")),
            (
                "'; DROP TABLE notes; --",
                Some("'''; DROP TABLE notes; --'"),
            ),
            ("a''b", Some("'a''''b'")),
            ("$$; SELECT 1; $$", Some("'$$; SELECT 1; $$'")),
            ("\"quoted\"", Some("'\"quoted\"'")),
            ("\\", None),
            ("\\'; DROP TABLE notes; --", None),
            ("a\0b", None),
            ("a\nb", None),
            ("a\rb", None),
            ("a\tb", None),
            ("\u{7f}", None),
            ("а", None),        // Cyrillic a
            ("\u{212a}", None), // Kelvin sign
            ("\u{200b}", None), // zero-width space
            ("\u{202e}", None), // right-to-left override
            ("\u{ff07}", None), // full-width apostrophe
            ("\u{2019}", None), // right single quotation mark
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            let got = push_literal(&mut out, "app.current_tenant", value).map(|()| out);
            match expected {
                Some(lit) => assert_eq!(got.as_deref().ok(), Some(*lit), "{value:?}"),
                None => assert!(
                    matches!(got, Err(Error::UnsafeSettingValue { .. })),
                    "{value:?} gave {got:?}"
                ),
            }
        }
    }

    #[test]
    fn setting_names_are_checked_and_quoted() {
        assert_eq!(
            quote_setting_name("app.current_tenant").unwrap(),
            r#""app"."current_tenant""#
        );
        assert_eq!(quote_setting_name("a.b.c_1").unwrap(), r#""a"."b"."c_1""#);
        for bad in [
            "",
            "tenant",
            "app.",
            ".tenant",
            "app..tenant",
            "App.tenant",
            "app.Tenant",
            "app.1tenant",
            "app.ten ant",
            "app.tenant;",
            "app.\"x\"",
            "app.tenant'",
            "app.ténant",
            "search_path",
        ] {
            assert!(
                matches!(
                    quote_setting_name(bad),
                    Err(Error::InvalidSettingName { .. })
                ),
                "{bad:?}"
            );
        }
        let long = format!("app.{}", "x".repeat(64));
        assert!(quote_setting_name(&long).is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        let quoted = |n: &str| {
            let mut out = String::new();
            push_identifier(&mut out, n).map(|()| out)
        };
        assert_eq!(quoted("tenant_app").unwrap(), r#""tenant_app""#);
        assert_eq!(quoted(r#"we"ird"#).unwrap(), r#""we""ird""#);
        assert!(quoted("").is_err());
        assert!(quoted("a\0b").is_err());
    }

    #[test]
    fn set_local_statements_quote_both_parts() {
        assert_eq!(
            set_local_sql("app.current_tenant", "o'brien").unwrap(),
            r#"SET LOCAL "app"."current_tenant" = 'o''brien'"#,
        );
        assert!(set_local_sql("current_tenant", "acme").is_err());
        assert!(set_local_sql("app.current_tenant", "a\\'b").is_err());
    }
}
