//! Hand-written transaction control, refused before it is sent.
//!
//! A [`TenantTx`](crate::TenantTx) ends with its own `commit` or
//! `rollback`. A `COMMIT`, `ROLLBACK` or `BEGIN` written by hand and run
//! through `&mut tx` would end the transaction `begin` opened (or start
//! another) behind its back: what ran before it would be committed or lost
//! while the code believes it is still inside one tenant transaction, and a
//! later `commit()` could not tell the rows it reports as saved from rows
//! already gone. So every statement's text is scanned before it is sent, and
//! one that *starts* with a transaction-control keyword is refused with
//! [`Error::TransactionControlRefused`](crate::Error::TransactionControlRefused):
//! `BEGIN`, `START` (`START TRANSACTION`), `COMMIT` (with `AND CHAIN`, and
//! `COMMIT PREPARED`), `END`, `ROLLBACK` (with `AND CHAIN`, `ROLLBACK TO`,
//! `ROLLBACK PREPARED`), `ABORT`, `SAVEPOINT`, `RELEASE` and
//! `PREPARE TRANSACTION`. Savepoints are made with
//! [`TenantTx::savepoint`](crate::TenantTx::savepoint).
//!
//! Only the start of each statement counts, so the same words elsewhere
//! (`CASE … END`, a `DO $$ BEGIN … END $$` body, a column named `release`,
//! a string) are not refused. Finding the starts needs a lexer that agrees
//! with PostgreSQL's on where strings, quoted identifiers, dollar quotes and
//! (nested) comments begin and end; a wrong answer in one direction refuses
//! a harmless statement, in the other it would let one through. The server
//! parses a whole message before it runs any of it, so a text whose reading
//! differs only in a way that makes it invalid SQL runs nothing. Two more
//! cases:
//!
//! * a backslash before a quote ends a `'…'` string or not, depending on
//!   `standard_conforming_strings`: the text is scanned once in each mode
//!   and refused if either finds transaction control;
//! * `;` inside a SQL-standard function body (`BEGIN ATOMIC … END`, outside
//!   parentheses, in `CREATE FUNCTION` or `CREATE PROCEDURE`) does not end
//!   the statement; `CASE … END` nests inside it.
//!
//! PL/pgSQL and SQL functions cannot end the enclosing transaction (the
//! server refuses `COMMIT` inside a function called in a transaction
//! block), so the statements a client sends are the only way to do it.

/// The transaction-control keyword that starts one of the statements in
/// `sql`, if any: `"COMMIT"`, `"PREPARE TRANSACTION"`, ….
pub(crate) fn transaction_control(sql: &str) -> Option<&'static str> {
    let bytes = sql.as_bytes();
    scan(bytes, false).or_else(|| scan(bytes, true))
}

/// Keywords that end or open a transaction or a savepoint when they start a
/// statement. `PREPARE` only with `TRANSACTION` after it (see [`scan`]).
const CONTROL: [(&str, &str); 9] = [
    ("begin", "BEGIN"),
    ("start", "START TRANSACTION"),
    ("commit", "COMMIT"),
    ("end", "END"),
    ("rollback", "ROLLBACK"),
    ("abort", "ABORT"),
    ("savepoint", "SAVEPOINT"),
    ("release", "RELEASE"),
    ("prepare", "PREPARE TRANSACTION"),
];

/// Where the scan is inside the current statement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// No word yet.
    Start,
    /// The first word was `PREPARE`: a second word `TRANSACTION` ends the
    /// transaction.
    AfterPrepare,
    /// The first word was `CREATE`: a `BEGIN ATOMIC` body may follow.
    InCreate,
    /// Anything else.
    Other,
}

/// One pass; `backslash_quotes`: a backslash escapes the next character in
/// plain `'…'` strings (`standard_conforming_strings = off`).
fn scan(b: &[u8], backslash_quotes: bool) -> Option<&'static str> {
    let mut i = 0;
    let mut place = Place::Start;
    // Inside `BEGIN ATOMIC`: `BEGIN ATOMIC` and `CASE` open, `END` closes;
    // `;` ends the statement only at depth 0.
    let mut atomic_depth = 0u32;
    // The previous word was `BEGIN` inside a CREATE statement.
    let mut after_begin = false;
    // In a CREATE statement: `FUNCTION` or `PROCEDURE` was seen, and the
    // depth of parentheses (`BEGIN ATOMIC` counts only outside them: an
    // argument named `begin` of a type named `atomic` is not a body).
    let mut routine = false;
    let mut parens = 0u32;
    while i < b.len() {
        let c = b[i];
        match c {
            b';' => {
                if atomic_depth == 0 {
                    place = Place::Start;
                    routine = false;
                    parens = 0;
                }
                after_begin = false;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'\'' => {
                i = skip_quoted(b, i, b'\'', backslash_quotes);
                place = token(place);
            }
            b'"' => {
                i = skip_quoted(b, i, b'"', false);
                place = token(place);
            }
            b'$' => {
                i = match dollar_delimiter(b, i) {
                    Some(end) => skip_dollar_quoted(b, i, end),
                    // A parameter (`$1`) or a stray `$`.
                    None => i + 1,
                };
                place = token(place);
            }
            _ if c.is_ascii_digit() => {
                // A number ends at its last digit: in `1$a$…$a$` the server
                // reads a dollar quote after the `1`.
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                place = token(place);
                after_begin = false;
            }
            _ if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident_cont(b[i]) {
                    i += 1;
                }
                let word = &b[start..i];
                // String prefixes: `E'…'` (backslash escapes always),
                // `U&'…'`, `U&"…"`, `B'…'`, `X'…'`, `N'…'`.
                if word.len() == 1 {
                    let next = b.get(i).copied();
                    let lower = c.to_ascii_lowercase();
                    if next == Some(b'\'') {
                        let escapes = lower == b'e' || backslash_quotes;
                        if matches!(lower, b'e' | b'b' | b'x' | b'n') {
                            i = skip_quoted(b, i, b'\'', escapes);
                            place = token(place);
                            continue;
                        }
                    }
                    if lower == b'u' && next == Some(b'&') {
                        match b.get(i + 1) {
                            Some(b'\'') => {
                                i = skip_quoted(b, i + 1, b'\'', backslash_quotes);
                                place = token(place);
                                continue;
                            }
                            Some(b'"') => {
                                i = skip_quoted(b, i + 1, b'"', false);
                                place = token(place);
                                continue;
                            }
                            _ => {}
                        }
                    }
                }
                match place {
                    Place::Start => {
                        if let Some(found) = keyword(word) {
                            if found == "PREPARE TRANSACTION" {
                                place = Place::AfterPrepare;
                            } else {
                                return Some(found);
                            }
                        } else if word.eq_ignore_ascii_case(b"create") {
                            place = Place::InCreate;
                        } else {
                            place = Place::Other;
                        }
                    }
                    Place::AfterPrepare => {
                        if word.eq_ignore_ascii_case(b"transaction") {
                            return Some("PREPARE TRANSACTION");
                        }
                        place = Place::Other;
                    }
                    Place::InCreate => {
                        if word.eq_ignore_ascii_case(b"function")
                            || word.eq_ignore_ascii_case(b"procedure")
                        {
                            routine = true;
                        }
                        let opens = (routine
                            && parens == 0
                            && after_begin
                            && word.eq_ignore_ascii_case(b"atomic"))
                            || (atomic_depth > 0 && word.eq_ignore_ascii_case(b"case"));
                        if opens {
                            atomic_depth += 1;
                        } else if atomic_depth > 0 && word.eq_ignore_ascii_case(b"end") {
                            atomic_depth -= 1;
                        }
                        after_begin = word.eq_ignore_ascii_case(b"begin");
                    }
                    Place::Other => {}
                }
            }
            _ => {
                if !is_space(c) {
                    place = token(place);
                    after_begin = false;
                    match c {
                        b'(' => parens += 1,
                        b')' => parens = parens.saturating_sub(1),
                        _ => {}
                    }
                }
                i += 1;
            }
        }
    }
    None
}

/// A token that is not a word: the statement has started.
fn token(place: Place) -> Place {
    match place {
        Place::InCreate => Place::InCreate,
        _ => Place::Other,
    }
}

fn keyword(word: &[u8]) -> Option<&'static str> {
    CONTROL
        .iter()
        .find(|(k, _)| word.eq_ignore_ascii_case(k.as_bytes()))
        .map(|(_, name)| *name)
}

/// Whitespace for PostgreSQL's lexer, counting the vertical tab (which some
/// versions treat as whitespace, and which Rust's
/// `is_ascii_whitespace` leaves out): erring towards a statement start.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// PostgreSQL's `ident_start`: a letter, `_`, or any non-ASCII byte.
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// PostgreSQL's `ident_cont`: also digits and `$`.
fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Skips a `/* … */` comment starting at `i`, nested as PostgreSQL nests
/// them; an unterminated one runs to the end.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0u32;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Skips a quoted string or identifier starting with `quote` at `i`
/// (doubled quotes stay inside; with `backslash`, a backslash escapes the
/// next byte). Returns the index after the closing quote.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    i += 1;
    while i < b.len() {
        let c = b[i];
        if backslash && c == b'\\' {
            i += 2;
        } else if c == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// If a dollar-quote delimiter (`$$`, `$tag$`) starts at `i`, the index
/// after it.
fn dollar_delimiter(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && is_ident_start(b[j]) {
        j += 1;
        while j < b.len() && (is_ident_start(b[j]) || b[j].is_ascii_digit()) {
            j += 1;
        }
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

/// Skips a dollar-quoted string whose opening delimiter is `b[start..end]`.
fn skip_dollar_quoted(b: &[u8], start: usize, end: usize) -> usize {
    let delimiter = &b[start..end];
    let body = &b[end..];
    match body.windows(delimiter.len()).position(|w| w == delimiter) {
        Some(p) => end + p + delimiter.len(),
        None => b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::transaction_control;

    #[test]
    fn every_spelling_of_transaction_control_is_found() {
        for (sql, found) in [
            ("COMMIT", "COMMIT"),
            ("commit;", "COMMIT"),
            ("Commit\tWORK", "COMMIT"),
            ("COMMIT AND CHAIN", "COMMIT"),
            ("COMMIT PREPARED 'x'", "COMMIT"),
            ("END", "END"),
            ("end transaction", "END"),
            ("ROLLBACK", "ROLLBACK"),
            ("ROLLBACK AND CHAIN", "ROLLBACK"),
            ("ROLLBACK TO SAVEPOINT s", "ROLLBACK"),
            ("rollback to s", "ROLLBACK"),
            ("ROLLBACK PREPARED 'x'", "ROLLBACK"),
            ("ABORT", "ABORT"),
            ("BEGIN", "BEGIN"),
            ("begin isolation level serializable", "BEGIN"),
            ("START TRANSACTION", "START TRANSACTION"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("RELEASE s", "RELEASE"),
            ("RELEASE SAVEPOINT s", "RELEASE"),
            ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"),
            ("prepare\n  transaction 'x'", "PREPARE TRANSACTION"),
            ("SELECT 1; COMMIT", "COMMIT"),
            ("SELECT 1;;ROLLBACK; BEGIN", "ROLLBACK"),
            ("ABORT; START TRANSACTION", "ABORT"),
            ("  /* a comment */ COMMIT", "COMMIT"),
            ("-- a comment\nCOMMIT", "COMMIT"),
            ("-- a comment\rEND", "END"),
            ("SELECT 'a''b'; ROLLBACK", "ROLLBACK"),
            ("SELECT \"a\"\"b\" FROM t; END", "END"),
            // standard_conforming_strings = off: the server reads `'a\''`
            // as one string and runs the COMMIT.
            ("SELECT 'a\\''; COMMIT; --'", "COMMIT"),
            // ... and on: `'a\'` is the string.
            ("SELECT 'a\\'; COMMIT; --'", "COMMIT"),
            ("SELECT E'\\''; COMMIT; --'", "COMMIT"),
            ("SELECT $$x$$; END", "END"),
            ("SELECT $a$ $$ $a$; ABORT", "ABORT"),
            ("SELECT $a$x$a$;COMMIT", "COMMIT"),
            ("SELECT 1$a$ ' $a$; COMMIT; --'", "COMMIT"),
            // Comments nest: the quote is inside the comment.
            ("/* /* */ ' */ COMMIT; --'", "COMMIT"),
            ("SELECT $1; COMMIT", "COMMIT"),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; COMMIT",
                "COMMIT",
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC \
                 SELECT CASE WHEN true THEN 1 END; END; ROLLBACK",
                "ROLLBACK",
            ),
            // `begin` as a table name is not a function body.
            ("CREATE TABLE begin (x int); COMMIT", "COMMIT"),
            ("SELECT U&'\\0041'; COMMIT", "COMMIT"),
            // `begin atomic` that is not a function body.
            (
                "CREATE VIEW v AS SELECT begin atomic FROM t; COMMIT",
                "COMMIT",
            ),
            (
                "CREATE FUNCTION f(begin atomic) RETURNS int LANGUAGE sql AS 'SELECT 1'; COMMIT",
                "COMMIT",
            ),
            (
                "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END; END",
                "END",
            ),
            ("SELECT 1\n;\nEND", "END"),
            // Some PostgreSQL versions count the vertical tab as whitespace.
            ("\x0bCOMMIT", "COMMIT"),
            ("SELECT 1;\x0c\x0bROLLBACK", "ROLLBACK"),
        ] {
            assert_eq!(transaction_control(sql), Some(found), "{sql}");
        }
    }

    #[test]
    fn the_same_words_elsewhere_are_not() {
        for sql in [
            "SELECT CASE WHEN x THEN 1 ELSE 2 END FROM t",
            "DO $$ BEGIN PERFORM 1; END $$",
            "DO 'BEGIN PERFORM 1; END'",
            "DO $body$ BEGIN COMMIT; END $body$",
            "SELECT 'COMMIT'",
            "SELECT 'a''; COMMIT'",
            "SELECT \"commit\" FROM t",
            "SELECT commit, release, start, \"end\" FROM builds",
            "INSERT INTO release (x) VALUES (1)",
            "UPDATE t SET x = 1",
            "-- COMMIT\nSELECT 1",
            "/* ROLLBACK */ SELECT 1",
            "/* /* COMMIT */ END */ SELECT 1",
            "SELECT $1::text",
            "SELECT a$b FROM t",
            "SET LOCAL app.x = 'y'",
            "PREPARE p AS SELECT 1",
            "SAVEPOINTS",
            "SELECT 1 AS begin",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; \
             SELECT CASE WHEN true THEN 2 END; END",
            "SELECT E'it''s'",
            "",
            ";",
        ] {
            assert_eq!(transaction_control(sql), None, "{sql}");
        }
    }
}
