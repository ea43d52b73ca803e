//! Reading a policy expression, as `pg_get_expr` prints it, for what it
//! means: is it bound to the tenant?
//!
//! An expression is *tenant-bound* when it is a conjunction (a top-level
//! `AND` of terms, redundant outer parentheses aside) one of whose terms is
//! exactly `<tenant column> = <source>` or `<source> = <tenant column>`,
//! where the source is a fail-closed form of the tenant:
//!
//! * `NULLIF(current_setting('<tenant setting>'::text, true), ''::text)`:
//!   NULL when the setting is unset or reverted;
//! * `current_setting('<tenant setting>'::text)`: an error when the setting
//!   was never set in the session;
//! * `current_setting('<tenant setting>'::text, true)`: NULL when it was
//!   never set, `''` when it was reverted, which no tenant id is;
//! * `tenant_guard.current_tenant()`: hardened mode's guard, NULL without
//!   the pool's proof;
//!
//! each alone or in a sub-select (`( SELECT … AS "nullif")`, as PostgreSQL
//! prints `(SELECT …)`), each optionally cast once inside and once outside
//! the sub-select to a plain type name (`::uuid`; no type modifier, which
//! could truncate). The column may be cast to `text` (PostgreSQL prints
//! that for a `varchar` column). Anything else, in particular a top-level
//! `OR`, `COALESCE(…, tenant_id)`, `IS NULL`, `IS NOT DISTINCT FROM` or a
//! function or operator outside `pg_catalog` (printed schema-qualified, as
//! the audit reads expressions with `search_path = pg_catalog`), is not
//! bound: every other term of a conjunction can only narrow it.

/// What a tenant-bound expression compares the tenant column with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    /// Not bound to the tenant: it can be true for another tenant's rows.
    None,
    /// The bare tenant setting, which SQL run by the application can set.
    Setting,
    /// Hardened mode's guard function.
    Guard,
    /// The tenant, but cast to a type that changes the value (`name`
    /// truncates to 63 bytes): two tenants can compare equal.
    Lossy(String),
}

impl Binding {
    /// Bound to the tenant without changing it.
    pub(crate) fn is_bound(&self) -> bool {
        matches!(self, Binding::Setting | Binding::Guard)
    }
}

/// Types whose cast changes a tenant id: `name` truncates to 63 bytes,
/// `"char"`, `char` and `character` keep one character (`bpchar` without
/// a length keeps it whole, but pads and ignores trailing spaces),
/// `citext` ignores case.
const LOSSY_TYPES: [&str; 6] = ["name", "char", "character", "bpchar", "citext", "\"char\""];

/// The lossy type `toks` (a plain type name) names, if any.
fn lossy_type(toks: &[Tok]) -> Option<String> {
    let last = toks.last()?;
    let name = match last {
        Tok::Word(w) => w.to_ascii_lowercase(),
        Tok::Quoted(q) if q == "char" => "\"char\"".to_owned(),
        Tok::Quoted(q) => q.clone(),
        _ => return None,
    };
    LOSSY_TYPES.contains(&name.as_str()).then_some(name)
}

/// A token of a printed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted identifier or keyword, as printed.
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A string literal (`'…'` or `E'…'`), unescaped.
    Str(String),
    /// A number.
    Num(String),
    /// An operator (`=`, `<>`, `||`, …).
    Op(String),
    /// `::`.
    Cast,
    /// `(`, `)`, `[`, `]`, `,`, `.`, `;` and anything unexpected.
    Punct(char),
}

impl Tok {
    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn is_punct(&self, ch: char) -> bool {
        *self == Tok::Punct(ch)
    }

    /// The identifier this token names, quoted or not.
    fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

/// Splits `text` into tokens; `None` if it cannot be read (an unterminated
/// quote), which the caller treats as not bound.
fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '\'' {
            let (s, next) = string_literal(&chars, i + 1, false)?;
            toks.push(Tok::Str(s));
            i = next;
        } else if (ch == 'E' || ch == 'e') && chars.get(i + 1) == Some(&'\'') {
            let (s, next) = string_literal(&chars, i + 2, true)?;
            toks.push(Tok::Str(s));
            i = next;
        } else if ch == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i)? {
                    '"' if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    '"' => {
                        i += 1;
                        break;
                    }
                    c => {
                        s.push(*c);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Quoted(s));
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if ch == ':' && chars.get(i + 1) == Some(&':') {
            toks.push(Tok::Cast);
            i += 2;
        } else if OPERATOR_CHARS.contains(ch) {
            let start = i;
            while i < chars.len() && OPERATOR_CHARS.contains(chars[i]) {
                i += 1;
            }
            toks.push(Tok::Op(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Punct(ch));
            i += 1;
        }
    }
    Some(toks)
}

/// Reads a string literal whose body starts at `i`; returns it and the
/// index after its closing quote. `escapes`: an `E'…'` literal, in which a
/// backslash escapes the next character.
fn string_literal(chars: &[char], mut i: usize, escapes: bool) -> Option<(String, usize)> {
    let mut s = String::new();
    loop {
        match chars.get(i)? {
            '\'' if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            '\'' => return Some((s, i + 1)),
            '\\' if escapes => {
                s.push(*chars.get(i + 1)?);
                i += 2;
            }
            c => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

/// How much deeper the token at hand takes the nesting: brackets, and
/// `CASE … END`, whose `WHEN a AND b` must not split a conjunction.
fn depth_change(tok: &Tok) -> i32 {
    match tok {
        Tok::Punct('(' | '[') => 1,
        Tok::Punct(')' | ']') => -1,
        t if t.is_word("CASE") => 1,
        t if t.is_word("END") => -1,
        _ => 0,
    }
}

/// Splits `toks` at the tokens, outside any brackets, for which `is_sep`
/// holds.
fn split_top(toks: &[Tok], is_sep: impl Fn(&Tok) -> bool) -> Vec<&[Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, tok) in toks.iter().enumerate() {
        if depth == 0 && is_sep(tok) {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
        depth += depth_change(tok);
    }
    parts.push(&toks[start..]);
    parts
}

/// The index of the bracket that closes the one at `open`.
fn closing(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, tok) in toks.iter().enumerate().skip(open) {
        depth += depth_change(tok);
        if depth == 0 {
            return Some(i);
        }
    }
    None
}

/// `toks` without the parentheses that enclose all of it.
fn strip_parens(mut toks: &[Tok]) -> &[Tok] {
    while toks.len() >= 2 && toks[0].is_punct('(') && closing(toks, 0) == Some(toks.len() - 1) {
        toks = &toks[1..toks.len() - 1];
    }
    toks
}

/// Whether a top-level `OR` joins parts of `toks`.
fn has_top_level_or(toks: &[Tok]) -> bool {
    split_top(toks, |t| t.is_word("OR")).len() > 1
}

/// The terms of a conjunction, nested `AND`s flattened; a term with an
/// `OR` at its own top level stays whole.
fn conjuncts<'t>(toks: &'t [Tok], out: &mut Vec<&'t [Tok]>) {
    let toks = strip_parens(toks);
    let parts = split_top(toks, |t| t.is_word("AND"));
    if parts.len() > 1 && !has_top_level_or(toks) {
        for part in parts {
            conjuncts(part, out);
        }
    } else {
        out.push(toks);
    }
}

/// What to look for.
pub(crate) struct Tenant<'a> {
    /// The tenant column.
    pub column: &'a str,
    /// The tenant setting (compared case-insensitively, as GUC names are).
    pub setting: &'a str,
    /// The guard function's schema.
    pub guard_schema: &'a str,
}

impl Tenant<'_> {
    /// How `expr` (as `pg_get_expr` prints it) is bound to the tenant.
    pub(crate) fn binding(&self, expr: &str) -> Binding {
        let Some(toks) = tokenize(expr) else {
            return Binding::None;
        };
        if has_top_level_or(strip_parens(&toks)) {
            return Binding::None;
        }
        let mut terms = Vec::new();
        conjuncts(&toks, &mut terms);
        let mut best = Binding::None;
        for term in terms {
            match self.term(term) {
                Binding::Guard => return Binding::Guard,
                Binding::Setting => best = Binding::Setting,
                Binding::Lossy(ty) => {
                    if best == Binding::None {
                        best = Binding::Lossy(ty);
                    }
                }
                Binding::None => {}
            }
        }
        best
    }

    /// A term `col = source` or `source = col`.
    fn term(&self, toks: &[Tok]) -> Binding {
        let toks = strip_parens(toks);
        let sides = split_top(toks, |t| matches!(t, Tok::Op(op) if op == "="));
        let [left, right] = sides.as_slice() else {
            return Binding::None;
        };
        if self.is_column(left) {
            self.source(right, true)
        } else if self.is_column(right) {
            self.source(left, true)
        } else {
            Binding::None
        }
    }

    /// The tenant column, bare or cast to `text`.
    fn is_column(&self, toks: &[Tok]) -> bool {
        let toks = strip_parens(toks);
        match toks {
            [col] => col.ident() == Some(self.column),
            [open, col, close, Tok::Cast, Tok::Word(ty)] => {
                open.is_punct('(')
                    && close.is_punct(')')
                    && col.ident() == Some(self.column)
                    && ty == "text"
            }
            _ => false,
        }
    }

    /// A fail-closed source of the tenant, cast at most once here and once
    /// inside a sub-select.
    fn source(&self, toks: &[Tok], may_cast: bool) -> Binding {
        let toks = strip_parens(toks);
        if toks.first().is_some_and(|t| t.is_word("SELECT")) {
            let mut inner = &toks[1..];
            if let [rest @ .., as_kw, alias] = inner {
                if as_kw.is_word("AS") && alias.ident().is_some() {
                    inner = rest;
                }
            }
            return self.call(inner, true);
        }
        let casts = top_level_positions(toks, |t| *t == Tok::Cast);
        if let Some(&at) = casts.last() {
            if !may_cast || casts.len() > 1 || !is_plain_type(&toks[at + 1..]) {
                return Binding::None;
            }
            return lossy_cast(self.source(&toks[..at], false), &toks[at + 1..]);
        }
        self.call(toks, false)
    }

    /// `NULLIF(current_setting(…), '')`, `current_setting(…)` or the guard
    /// function, optionally cast when `may_cast`.
    fn call(&self, toks: &[Tok], may_cast: bool) -> Binding {
        let toks = strip_parens(toks);
        let casts = top_level_positions(toks, |t| *t == Tok::Cast);
        if let Some(&at) = casts.last() {
            if !may_cast || casts.len() > 1 || !is_plain_type(&toks[at + 1..]) {
                return Binding::None;
            }
            return lossy_cast(self.call(&toks[..at], false), &toks[at + 1..]);
        }
        if let [schema, dot, name, open, close] = toks {
            if schema.ident() == Some(self.guard_schema)
                && dot.is_punct('.')
                && name.ident() == Some("current_tenant")
                && open.is_punct('(')
                && close.is_punct(')')
            {
                return Binding::Guard;
            }
        }
        if let Some(args) = call_args(toks, "NULLIF") {
            if let [setting, empty] = args.as_slice() {
                if self.reads_setting(setting) && is_empty_text(empty) {
                    return Binding::Setting;
                }
            }
            return Binding::None;
        }
        if self.reads_setting(toks) {
            Binding::Setting
        } else {
            Binding::None
        }
    }

    /// `current_setting('<setting>'::text)` or with a `true`/`false`
    /// second argument.
    fn reads_setting(&self, toks: &[Tok]) -> bool {
        let Some(args) = call_args(strip_parens(toks), "current_setting") else {
            return false;
        };
        let (name, missing_ok) = match args.as_slice() {
            [name] => (*name, None),
            [name, missing_ok] => (*name, Some(*missing_ok)),
            _ => return false,
        };
        let names_setting = match name {
            [Tok::Str(s)] | [Tok::Str(s), Tok::Cast, Tok::Word(_)] => {
                s.eq_ignore_ascii_case(self.setting)
                    && name.get(2).is_none_or(|t| t.is_word("text"))
            }
            _ => false,
        };
        let flag_ok = match missing_ok {
            None => true,
            Some([flag]) => flag.is_word("true") || flag.is_word("false"),
            Some(_) => false,
        };
        names_setting && flag_ok
    }
}

/// `inner` cast to the type `ty`: lossy when the type changes the value.
fn lossy_cast(inner: Binding, ty: &[Tok]) -> Binding {
    match (inner, lossy_type(ty)) {
        (Binding::None, _) => Binding::None,
        (_, Some(ty)) => Binding::Lossy(ty),
        (inner, None) => inner,
    }
}

/// Positions of the tokens outside brackets for which `pred` holds.
fn top_level_positions(toks: &[Tok], pred: impl Fn(&Tok) -> bool) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0;
    for (i, tok) in toks.iter().enumerate() {
        if depth == 0 && pred(tok) {
            out.push(i);
        }
        depth += depth_change(tok);
    }
    out
}

/// A type name without modifiers or array bounds: `uuid`, `character
/// varying`, `public.tenant_key`.
fn is_plain_type(toks: &[Tok]) -> bool {
    !toks.is_empty()
        && toks
            .iter()
            .all(|t| matches!(t, Tok::Word(_) | Tok::Quoted(_) | Tok::Punct('.')))
}

/// `''` or `''::text`.
fn is_empty_text(toks: &[Tok]) -> bool {
    match toks {
        [Tok::Str(s)] => s.is_empty(),
        [Tok::Str(s), Tok::Cast, ty] => s.is_empty() && ty.is_word("text"),
        _ => false,
    }
}

/// The arguments of `name( … )` when `toks` is exactly that call, with an
/// unqualified `name` (functions of `pg_catalog` print unqualified).
fn call_args<'t>(toks: &'t [Tok], name: &str) -> Option<Vec<&'t [Tok]>> {
    let (first, rest) = toks.split_first()?;
    if !first.is_word(name) || rest.first().is_none_or(|t| !t.is_punct('(')) {
        return None;
    }
    if closing(rest, 0)? != rest.len() - 1 {
        return None;
    }
    let inner = &rest[1..rest.len() - 1];
    if inner.is_empty() {
        return Some(Vec::new());
    }
    Some(split_top(inner, |t| t.is_punct(',')))
}

/// Whether `expr` is the literal `true`.
pub(crate) fn is_literal_true(expr: &str) -> bool {
    tokenize(expr).is_some_and(|toks| matches!(strip_parens(&toks), [t] if t.is_word("true")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Tenant<'static> = Tenant {
        column: "tenant_id",
        setting: "app.current_tenant",
        guard_schema: "tenant_guard",
    };

    /// What PostgreSQL 15 prints for the policy `RlsPolicy` writes.
    const HELPER: &str = "(tenant_id = ( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\"))";

    fn binding(expr: &str) -> Binding {
        TENANT.binding(expr)
    }

    #[test]
    fn the_forms_postgres_prints_for_fail_closed_sources_are_bound() {
        for expr in [
            HELPER,
            "(tenant_id = NULLIF(current_setting('app.current_tenant'::text, true), ''::text))",
            "(tenant_id = current_setting('app.current_tenant'::text))",
            "(current_setting('app.current_tenant'::text) = tenant_id)",
            "(tenant_id = current_setting('app.current_tenant'::text, true))",
            "(tenant_id = ( SELECT current_setting('app.current_tenant'::text) AS current_setting))",
            // Casts: outside, inside the sub-select, on a varchar column.
            "(tenant_id = (current_setting('app.current_tenant'::text))::uuid)",
            "(tenant_id = ( SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::uuid AS \"nullif\"))",
            "(tenant_id = (( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\"))::integer)",
            "((tenant_id)::text = ( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\"))",
            // GUC names are case-insensitive.
            "(tenant_id = current_setting('App.Current_Tenant'::text))",
        ] {
            assert_eq!(binding(expr), Binding::Setting, "{expr}");
        }
        for expr in [
            "(tenant_id = ( SELECT tenant_guard.current_tenant() AS current_tenant))",
            "((tenant_id)::text = tenant_guard.current_tenant())",
            // A guard term with a bare-setting term beside it: the guard binds.
            "((tenant_id = current_setting('app.current_tenant'::text)) AND (tenant_id = ( SELECT tenant_guard.current_tenant() AS current_tenant)))",
        ] {
            assert_eq!(binding(expr), Binding::Guard, "{expr}");
        }
    }

    #[test]
    fn casts_that_change_the_tenant_are_lossy() {
        for (expr, ty) in [
            ("(tenant_id = (current_setting('app.current_tenant'::text, true))::name)", "name"),
            ("(tenant_id = ( SELECT (NULLIF(current_setting('app.current_tenant'::text, true), ''::text))::\"char\" AS \"nullif\"))", "\"char\""),
            ("(tenant_id = (current_setting('app.current_tenant'::text))::public.citext)", "citext"),
        ] {
            assert_eq!(binding(expr), Binding::Lossy(ty.into()), "{expr}");
            assert!(!binding(expr).is_bound());
        }
        assert_eq!(
            binding("(tenant_id = (current_setting('app.current_tenant'::text))::uuid)"),
            Binding::Setting
        );
    }

    #[test]
    fn conditions_and_ed_to_the_tenant_term_are_fine() {
        for expr in [
            "((tenant_id = current_setting('app.current_tenant'::text)) AND (n > 0) AND (is_public OR (id = 1)))",
            "((tenant_id = current_setting('app.current_tenant'::text)) AND is_public)",
            "(is_public AND (tenant_id = ( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\")))",
            "((tenant_id = 'it''s'::text) AND (tenant_id = current_setting('app.current_tenant'::text)))",
            "((tenant_id = current_setting('app.current_tenant'::text)) AND ((n > 0) OR (id = 1)) AND ((tenant_id = 'x'::text) OR true))",
            "(((tenant_id = current_setting('app.current_tenant'::text)) AND (n > 0)) AND (body <> ''::text))",
            "((CASE WHEN (a AND b) THEN true ELSE false END) AND (tenant_id = current_setting('app.current_tenant'::text)))",
        ] {
            assert_eq!(binding(expr), Binding::Setting, "{expr}");
        }
    }

    #[test]
    fn policies_true_for_other_tenants_are_not_bound() {
        for expr in [
            "true",
            "is_public",
            "(body <> ''::text)",
            // Fail-open patterns: an OR that admits every row, a NULL that passes.
            "((tenant_id = ( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\")) OR true)",
            "((tenant_id = current_setting('app.current_tenant'::text, true)) OR (current_setting('app.current_tenant'::text, true) IS NULL))",
            "(tenant_id = COALESCE(current_setting('app.current_tenant'::text, true), tenant_id))",
            "(tenant_id = COALESCE(NULLIF(current_setting('app.current_tenant'::text, true), ''::text), tenant_id))",
            // An OR at the top level, however deep the tenant term sits.
            "(((tenant_id = current_setting('app.current_tenant'::text)) AND (n > 0)) OR is_public)",
            "(is_public OR ((tenant_id = current_setting('app.current_tenant'::text)) AND (n > 0)))",
            // Negations, other operators, other settings, other columns.
            "(NOT (tenant_id <> current_setting('app.current_tenant'::text)))",
            "(tenant_id <> current_setting('app.current_tenant'::text))",
            "(NOT (tenant_id IS DISTINCT FROM current_setting('app.current_tenant'::text)))",
            "(tenant_id = current_setting('app.other'::text))",
            "(owner_id = current_setting('app.current_tenant'::text))",
            "(tenant_id = current_user)",
            "(tenant_id = 'acme'::text)",
            "(tenant_id = (current_setting('app.current_tenant'::text) || ''::text))",
            // Casts that lose information.
            "((tenant_id)::integer = (current_setting('app.current_tenant'::text))::integer)",
            "(tenant_id = (current_setting('app.current_tenant'::text))::character varying(3))",
            "(tenant_id = ((current_setting('app.current_tenant'::text))::integer)::text)",
            // Functions and operators not from pg_catalog.
            "(tenant_id = public.current_setting('app.current_tenant'::text))",
            "(tenant_id OPERATOR(public.=) current_setting('app.current_tenant'::text))",
            "(tenant_id = evil.current_tenant())",
            "(tenant_id = ( SELECT tenant_guard.current_tenant('x'::text) AS current_tenant))",
            // A sub-select that reads a table.
            "(tenant_id = ( SELECT t.id FROM tenants t WHERE (t.name = current_setting('app.current_tenant'::text))))",
            // `a = b = c`, the setting's missing_ok as an expression.
            "(tenant_id = current_setting('app.current_tenant'::text, (n > 0)))",
            "(tenant_id = NULLIF(current_setting('app.current_tenant'::text, true), 'acme'::text))",
            // Unreadable text.
            "(tenant_id = current_setting('app.current_tenant",
            "",
        ] {
            assert_eq!(binding(expr), Binding::None, "{expr}");
        }
    }

    #[test]
    fn quotes_and_brackets_are_respected() {
        // The `OR` and `=` inside literals and quoted names mean nothing.
        assert_eq!(
            binding("((tenant_id = current_setting('app.current_tenant'::text)) AND (body <> ' OR true'::text))"),
            Binding::Setting
        );
        assert_eq!(
            binding(
                "((tenant_id = current_setting('app.current_tenant'::text)) AND (\"x OR y\" = 1))"
            ),
            Binding::Setting
        );
        assert_eq!(
            binding("(tenant_id = current_setting(E'app.current_tenant\\\\'::text))"),
            Binding::None
        );
        let odd = Tenant {
            column: "Tenant \"Key\"",
            ..TENANT
        };
        assert_eq!(
            odd.binding("(\"Tenant \"\"Key\"\"\" = current_setting('app.current_tenant'::text))"),
            Binding::Setting
        );
        assert_eq!(odd.binding(HELPER), Binding::None);
        let custom = Tenant {
            setting: "myapp.tenant",
            ..TENANT
        };
        assert_eq!(custom.binding(HELPER), Binding::None);
        assert_eq!(
            custom.binding("(tenant_id = current_setting('myapp.tenant'::text))"),
            Binding::Setting
        );
    }

    #[test]
    fn literal_true_is_recognised() {
        assert!(is_literal_true("true"));
        assert!(is_literal_true(" (true) "));
        assert!(!is_literal_true("'true'::text"));
        assert!(!is_literal_true("(true OR false)"));
    }

    #[test]
    fn tokens_of_a_printed_expression() {
        assert_eq!(
            tokenize("(a::text <> E'x\\\\y''z') AND \"Q\"\"\"").unwrap(),
            [
                Tok::Punct('('),
                Tok::Word("a".into()),
                Tok::Cast,
                Tok::Word("text".into()),
                Tok::Op("<>".into()),
                Tok::Str("x\\y'z".into()),
                Tok::Punct(')'),
                Tok::Word("AND".into()),
                Tok::Quoted("Q\"".into()),
            ]
        );
        assert!(tokenize("'open").is_none());
        assert!(tokenize("\"open").is_none());
    }
}
