//! Which statements may leave session state that the end of the
//! transaction does not clear.
//!
//! The commit message clears, at no round trip, what can be cleared inside a
//! transaction: settings and the role (`RESET ALL`, `RESET ROLE`),
//! `WITH HOLD` cursors, temporary tables and sequence state (a rollback
//! undoes the rest and is followed by `DISCARD SEQUENCES`). Three kinds of
//! leftovers cannot be cleared that way: prepared statements made with SQL
//! `PREPARE` (listed in `pg_prepared_statements` and executable by the next
//! borrower; `DEALLOCATE ALL` would also drop sqlx's own), `LISTEN`
//! registrations (an `UNLISTEN` takes effect only at commit) and session
//! advisory locks (their release is a function call, which the commit
//! message would pay for on every transaction). Checking the server for them
//! costs a query per transaction, about a quarter of a short transaction's
//! time.
//!
//! So instead, the text of every statement a tenant transaction runs is
//! scanned (case-insensitively, for whole words) for what can create them,
//! directly or through code the statement itself brings: `PREPARE`,
//! `DEALLOCATE`, `DISCARD`, `LISTEN`, the `*advisory_lock*` functions,
//! `EXECUTE`, `DO` blocks (not `ON CONFLICT DO NOTHING/UPDATE`), the
//! creation of a `FUNCTION` or `PROCEDURE`, the built-in functions that run
//! SQL text given as a string (`query_to_xml*`, `ts_stat`, `ts_rewrite`),
//! and identifiers spelled with Unicode escapes (`U&"…"`), which can hide a
//! function's name. A transaction that ran such a
//! statement does not hand its connection on: the connection is closed when
//! the transaction ends, and the next `begin` gets another. A false alarm (a
//! column named `listen`, the word in a string literal) costs one new
//! connection, never a wrong answer.
//!
//! What this cannot see: a function that already exists in the database and
//! runs such statements itself (written by the schema's owner, not by the
//! application's SQL).

/// Whether `sql` contains a word that may leave session state behind.
pub(crate) fn leaves_session_state(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let word = &bytes[start..i];
        // `U&"…"` spells an identifier with escapes (`U&"pg_adv\0069sory_lock"`),
        // which hides a function's name from a word scan.
        if word.eq_ignore_ascii_case(b"u") && bytes[i..].starts_with(b"&\"") {
            return true;
        }
        if word.len() < 2 || word.len() > 40 {
            continue;
        }
        let mut lower = [0u8; 40];
        for (l, b) in lower.iter_mut().zip(word) {
            *l = b.to_ascii_lowercase();
        }
        let word = &lower[..word.len()];
        match word {
            b"prepare" | b"deallocate" | b"discard" | b"listen" | b"execute" | b"function"
            | b"procedure" => return true,
            // Functions that run SQL text given as a string, which can be
            // assembled at run time where no scan sees it.
            b"ts_stat" | b"ts_rewrite" => return true,
            _ if word.starts_with(b"query_to_xml") => return true,
            b"do" if !followed_by_conflict_action(&bytes[i..]) => return true,
            _ if is_session_advisory_lock(word) => return true,
            _ => {}
        }
    }
    false
}

/// Whether `sql` may change the role the session runs as: it has the word
/// `ROLE` and the word `SET` or `RESET` (`SET ROLE`, `SET LOCAL ROLE`; a
/// column named `role` in a statement without `SET` does not count), the
/// word `AUTHORIZATION` (`SET SESSION AUTHORIZATION`), or calls
/// `set_config` (`set_config('role', …, false)`). Code that already exists
/// in the database and runs `SET ROLE` itself is not seen; it can only
/// switch to a role the pool's role is a member of, and for such a role
/// every commit resets the role anyway (checked at connect).
pub(crate) fn may_change_role(sql: &str) -> bool {
    any_word(sql, &[b"authorization", b"set_config"])
        || (any_word(sql, &[b"role"]) && any_word(sql, &[b"set", b"reset"]))
}

/// The words of `bytes` (see [`is_word_byte`]), in order.
fn words(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| !is_word_byte(b)).filter(|w| !w.is_empty())
}

/// Whether `sql` may defer a constraint: it mentions `CONSTRAINTS`
/// (`SET CONSTRAINTS … DEFERRED`).
pub(crate) fn may_defer_constraints(sql: &str) -> bool {
    any_word(sql, &[b"constraints"])
}

/// Whether one of `wanted` (lower case) is a whole word of `sql`, in any
/// case.
fn any_word(sql: &str, wanted: &[&[u8]]) -> bool {
    words(sql.as_bytes()).any(|word| wanted.iter().any(|w| word.eq_ignore_ascii_case(w)))
}

/// Letters, digits and `_` continue a word; anything else (including `$`,
/// so that `DO$$` is seen, and non-ASCII bytes, which never form these
/// keywords) ends it.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `pg_advisory_lock`, `pg_try_advisory_lock_shared`, ...: the session-level
/// ones. The `_xact_` variants end with the transaction and are harmless.
fn is_session_advisory_lock(word: &[u8]) -> bool {
    contains(word, b"advisory") && !contains(word, b"xact")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether the word after `DO` is one of the `ON CONFLICT` actions or a
/// rule's `DO INSTEAD`/`DO ALSO`, rather than the start of an anonymous
/// code block.
fn followed_by_conflict_action(rest: &[u8]) -> bool {
    let start = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let rest = &rest[start..];
    let end = rest
        .iter()
        .position(|&b| !is_word_byte(b))
        .unwrap_or(rest.len());
    let next = &rest[..end];
    ["nothing", "update", "instead", "also"]
        .iter()
        .any(|w| next.eq_ignore_ascii_case(w.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::{leaves_session_state, may_change_role};

    #[test]
    fn role_and_held_cursor_words_are_seen() {
        for sql in [
            "SET ROLE helper",
            "set role helper",
            "SET SESSION AUTHORIZATION DEFAULT",
            "SELECT set_config('role', 'helper', false)",
            "SELECT pg_catalog.\"set_config\"('role', 'x', false)",
            "SET LOCAL ROLE helper",
            "SET SESSION ROLE helper",
            "RESET ROLE",
            "SELECT 1;\nSET\n  ROLE helper",
            "SET /* a comment */ ROLE helper",
        ] {
            assert!(may_change_role(sql), "{sql}");
        }
        for sql in [
            "SELECT body FROM notes WHERE id = $1",
            "UPDATE roles_table SET x = 1",
            "SELECT id, role, content FROM messages WHERE role = 'user'",
            "DECLARE c CURSOR FOR SELECT 1",
        ] {
            assert!(!may_change_role(sql), "{sql}");
        }
    }

    #[test]
    fn statements_that_leave_session_state_are_seen() {
        for sql in [
            "PREPARE p AS SELECT * FROM notes",
            "prepare p as select 1",
            "SELECT 1; Prepare p AS SELECT 2",
            "DEALLOCATE ALL",
            "discard all",
            "LISTEN chan",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_catalog.pg_try_advisory_lock_shared(1, 2)",
            "DO $$ BEGIN PERFORM 1; END $$",
            "do'begin null; end'",
            "DO LANGUAGE plpgsql $$ BEGIN NULL; END $$",
            "CREATE FUNCTION pg_temp.f() RETURNS void LANGUAGE sql AS 'SELECT 1'",
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
            "EXECUTE p",
            "/* x */PREPARE p AS SELECT 1",
            "\tLISTEN\nchan",
            "DO$$BEGIN NULL; END$$",
            "SELECT U&\"pg_adv\\0069sory_lock\"(4242)",
            "select u&\"x\"()",
            "SELECT query_to_xml('SELECT pg_adv' || 'isory_lock(1)', true, false, '')",
            "SELECT * FROM ts_stat('SELECT to_tsvector(' || 'x' || ')')",
        ] {
            assert!(leaves_session_state(sql), "{sql}");
        }
    }

    #[test]
    fn everyday_statements_are_not() {
        for sql in [
            "SELECT id, body FROM notes WHERE tenant_id = $1",
            "INSERT INTO notes (tenant_id, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            "INSERT INTO t VALUES (1) on conflict do\n  nothing",
            "UPDATE messages SET role = 'user' WHERE id = 1",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT prepared_at, listener, executed FROM jobs",
            "SELECT done, todo FROM tasks",
            "SAVEPOINT tenant_sp_1",
            "SELECT 'café' AS é",
            "",
        ] {
            assert!(!leaves_session_state(sql), "{sql}");
        }
    }
}
