//! Settings pinned when a connection opens.
//!
//! Any role may store defaults for itself (`ALTER ROLE CURRENT_USER SET
//! statement_timeout = '1ms'`), also from SQL run inside a tenant
//! transaction, and every later session of the role starts with them: one
//! tenant's SQL could make every tenant's requests time out, resolve names
//! to another schema, or turn the transactions read-only. Values given in
//! the connection's start-up `options` (`-c name=value`) take precedence
//! over every stored default, survive `RESET ALL`, and cost nothing per
//! transaction. The pool gives each setting below its PostgreSQL built-in
//! default there, unless the application chose another value
//! ([`TenantPoolBuilder::pin_setting`](crate::TenantPoolBuilder::pin_setting)).

use sqlx::postgres::PgConnectOptions;

/// The settings pinned by default, with PostgreSQL's built-in defaults,
/// and the first server version (`server_version_num`) that has each.
pub(crate) const PINNED: [(&str, &str, u32); 14] = [
    ("statement_timeout", "0", 0),
    ("lock_timeout", "0", 0),
    ("idle_in_transaction_session_timeout", "0", 0),
    ("idle_session_timeout", "0", 140_000),
    ("transaction_timeout", "0", 170_000),
    ("search_path", "\"$user\", public", 0),
    ("default_transaction_isolation", "read committed", 0),
    ("default_transaction_read_only", "off", 0),
    ("default_transaction_deferrable", "off", 0),
    ("row_security", "on", 0),
    ("standard_conforming_strings", "on", 0),
    ("bytea_output", "hex", 0),
    ("IntervalStyle", "postgres", 0),
    ("exit_on_error", "off", 0),
];

/// The `-c name=value` pairs for a server of `version`: the defaults of
/// [`PINNED`] the server has, each replaced by the application's value
/// where it gave one, then the application's other settings.
pub(crate) fn pins(version: u32, custom: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = PINNED
        .iter()
        .filter(|(_, _, since)| version >= *since)
        .map(|(name, value, _)| {
            let value = custom
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map_or(*value, |(_, v)| v.as_str());
            ((*name).to_owned(), value.to_owned())
        })
        .collect();
    for (name, value) in custom {
        if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

/// `options` with `pins` added to its start-up options, escaped as the
/// server reads them (whitespace separates options; a backslash keeps the
/// next character). A setting the options already give (`-c name=value`
/// or `--name=value` in the URL's `options`) keeps that value: the
/// application pinned it already.
pub(crate) fn apply(options: PgConnectOptions, pins: &[(String, String)]) -> PgConnectOptions {
    let given = given_names(options.get_options().unwrap_or(""));
    let pins: Vec<(String, String)> = pins
        .iter()
        .filter(|(name, _)| !given.iter().any(|g| g.eq_ignore_ascii_case(name)))
        .map(|(name, value)| (escape(name), escape(value)))
        .collect();
    if pins.is_empty() {
        return options;
    }
    options.options(pins)
}

/// The setting names an options string gives (`-c name=value`,
/// `-cname=value`, `--name=value`).
fn given_names(options: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut names = Vec::new();
    let mut iter = words.iter();
    while let Some(w) = iter.next() {
        let assignment = if w == "-c" {
            iter.next().map(String::as_str)
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest)
        } else {
            w.strip_prefix("-c")
        };
        if let Some((name, _)) = assignment.and_then(|a| a.split_once('=')) {
            names.push(name.replace('-', "_"));
        }
    }
    names
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch == '\\' || ch.is_whitespace() {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The server's version, from a connection made only to read it (the
/// start-up message reports it; no statement runs, so no stored timeout
/// can interfere).
pub(crate) async fn server_version(options: &PgConnectOptions) -> Result<u32, sqlx::Error> {
    use sqlx::Connection;
    let conn = sqlx::PgConnection::connect_with(options).await?;
    let version = conn.server_version_num().unwrap_or(0);
    conn.close().await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_server_version_and_the_application_wins() {
        let old = pins(150_000, &[]);
        assert!(old.iter().all(|(n, _)| n != "transaction_timeout"));
        assert!(old.iter().any(|(n, _)| n == "idle_session_timeout"));
        let new = pins(170_000, &[]);
        assert!(new
            .iter()
            .any(|(n, v)| n == "transaction_timeout" && v == "0"));
        let custom = pins(
            150_000,
            &[
                ("statement_timeout".into(), "30s".into()),
                ("work_mem".into(), "8MB".into()),
            ],
        );
        assert!(custom.contains(&("statement_timeout".into(), "30s".into())));
        assert!(!custom.contains(&("statement_timeout".into(), "0".into())));
        assert_eq!(custom.last(), Some(&("work_mem".into(), "8MB".into())));
    }

    #[test]
    fn settings_the_options_already_give_are_left_alone() {
        assert_eq!(
            given_names("-c statement_timeout=5s --lock-timeout=1s -csearch_path=a\\ b"),
            ["statement_timeout", "lock_timeout", "search_path"]
        );
        let options = PgConnectOptions::new().options([("statement_timeout", "5s")]);
        let pinned = apply(options, &pins(150_000, &[]));
        let text = pinned.get_options().unwrap();
        assert!(text.starts_with("-c statement_timeout=5s "), "{text}");
        assert!(!text.contains("statement_timeout=0"), "{text}");
        assert!(text.contains("-c lock_timeout=0"), "{text}");
    }

    #[test]
    fn values_are_escaped_for_the_options_string() {
        assert_eq!(escape("\"$user\", public"), "\"$user\",\\ public");
        assert_eq!(escape("read committed"), "read\\ committed");
        assert_eq!(escape("a\\b"), "a\\\\b");
    }
}
