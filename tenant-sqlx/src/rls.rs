//! Row-Level Security policy helpers: the SQL that makes a table a tenant
//! table, for use in a migration.
//!
//! A tenant table needs three things, and [`RlsPolicy`] writes all three:
//!
//! 1. `ENABLE ROW LEVEL SECURITY`, so policies apply at all;
//! 2. `FORCE ROW LEVEL SECURITY`, so they apply to the table's owner too;
//! 3. one policy for every command, with both `USING` (which rows are seen,
//!    updated and deleted) and `WITH CHECK` (which rows may be written), on
//!    `col = NULLIF(current_setting('app.current_tenant', true), '')`.
//!
//! The comparison is written that way on purpose:
//!
//! * `current_setting` is a stable function, so the planner uses the
//!   comparison as an index condition on an index that leads with the tenant
//!   column (evaluated once per scan), as it would a hand-written
//!   `WHERE tenant_id = $1`, and estimates it with the tenant's own
//!   statistics. Wrapped in a sub-select (`(SELECT NULLIF(…))`, what
//!   [`RlsPolicy::per_statement`] writes) it becomes an init-plan, read once per
//!   statement even in a sequential scan, but that init-plan costs a few
//!   microseconds on every statement: the `scale` bench measured inserts
//!   and updates 5–11% slower than `WHERE tenant_id = $1` by hand, and this
//!   form 1–6% slower. A statement that scans a table sequentially reads the
//!   setting on every row instead: for tables scanned that way, choose
//!   [`RlsPolicy::per_statement`], which writes the sub-select form (both
//!   pass the audit);
//! * `current_setting(…, true)` returns NULL instead of failing when the
//!   setting was never defined in the session;
//! * `NULLIF(…, '')` because a transaction-local setting that has been
//!   reverted reads `''`, not NULL. Either way the comparison is NULL, so a
//!   connection without a tenant sees no rows and can write none.
//!
//! The tenant column is compared as `text`, which is what the context's
//! identifiers are. A column of another type needs its own policy.
//!
//! Every identifier is double-quoted and every string is a quoted literal, so
//! a hostile table, column, role or setting name cannot change the meaning of
//! the statement; an impossible name (an empty one, say) makes PostgreSQL
//! reject the statement instead.
//!
//! ```
//! use tenant_sqlx::rls::RlsPolicy;
//!
//! let sql = RlsPolicy::new("public.messages", "tenant_id").grant_to("app").sql();
//! assert!(sql.contains(r#"ALTER TABLE "public"."messages" FORCE ROW LEVEL SECURITY"#));
//! assert!(sql.contains(
//!     r#"USING ("tenant_id" = NULLIF(current_setting('app.current_tenant', true), ''))"#
//! ));
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::SettingNames;

/// The policy name [`RlsPolicy`] uses unless told otherwise.
pub const DEFAULT_POLICY_NAME: &str = "tenant_isolation";

/// The privileges [`RlsPolicy::grant_to`] grants: the four DML commands,
/// which are all subject to the policy. `TRUNCATE` is left out on purpose:
/// it ignores Row-Level Security and empties the table for every tenant.
pub const GRANTED_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE";

pub use crate::sql::{quote_ident, quote_literal};

/// A table name, optionally schema-qualified, quoted when written as SQL.
///
/// From a `&str`, the text before the first `.` is the schema and the rest
/// the table (`"public.messages"`); a name without a dot is unqualified and
/// found through the `search_path`. A schema or table whose name contains a
/// dot needs [`TableName::qualified`]. Do not quote the parts yourself: they
/// are quoted for you, and a pre-quoted name would name a different table.
///
/// ```
/// use tenant_sqlx::rls::TableName;
///
/// assert_eq!(TableName::from("public.messages").to_string(), r#""public"."messages""#);
/// assert_eq!(TableName::from("messages").to_string(), r#""messages""#);
/// assert_eq!(TableName::qualified("my.schema", "Messages").to_string(), r#""my.schema"."Messages""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    /// An unqualified table name, resolved through the `search_path`.
    pub fn unqualified(name: impl Into<String>) -> Self {
        TableName {
            schema: None,
            name: name.into(),
        }
    }

    /// A table `name` in `schema`, taken as is (dots included).
    pub fn qualified(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }

    /// The schema, if the name is qualified.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The table's own name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl From<&str> for TableName {
    fn from(text: &str) -> Self {
        match text.split_once('.') {
            Some((schema, name)) => TableName::qualified(schema, name),
            None => TableName::unqualified(text),
        }
    }
}

impl From<String> for TableName {
    fn from(text: String) -> Self {
        TableName::from(text.as_str())
    }
}

/// Writes the quoted SQL form, such as `"public"."messages"`.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote_ident(schema))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

/// The SQL that turns a table into a tenant table: `ENABLE` and `FORCE ROW
/// LEVEL SECURITY` and one policy for all commands with both `USING` and
/// `WITH CHECK`; optionally the grants for the application role.
///
/// Run the [`statements`](Self::statements) (or the whole [`sql`](Self::sql)
/// as one script) from a migration, as the table's owner — not as the
/// application role, which must neither own the table nor be able to change
/// its policies.
///
/// ```
/// use tenant_sqlx::rls::RlsPolicy;
/// use tenant_sqlx::SettingNames;
///
/// let policy = RlsPolicy::new("public.messages", "tenant_id")
///     .setting_names(&SettingNames::default().rename_tenant("myapp.tenant"))
///     .policy_name("messages_by_tenant")
///     .grant_to("app");
/// assert_eq!(
///     policy.statements(),
///     [
///         r#"ALTER TABLE "public"."messages" ENABLE ROW LEVEL SECURITY"#,
///         r#"ALTER TABLE "public"."messages" FORCE ROW LEVEL SECURITY"#,
///         concat!(
///             r#"CREATE POLICY "messages_by_tenant" ON "public"."messages" AS PERMISSIVE FOR ALL TO PUBLIC"#,
///             r#" USING ("tenant_id" = NULLIF(current_setting('myapp.tenant', true), ''))"#,
///             r#" WITH CHECK ("tenant_id" = NULLIF(current_setting('myapp.tenant', true), ''))"#,
///         ),
///         r#"GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."messages" TO "app""#,
///     ]
/// );
/// ```
///
/// From an sqlx migration written in Rust, or at start-up through the admin
/// path:
///
/// ```no_run
/// # async fn migrate(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
/// use sqlx::Executor;
/// use tenant_sqlx::rls::RlsPolicy;
///
/// conn.execute(RlsPolicy::new("public.messages", "tenant_id").sql().as_str()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsPolicy {
    table: TableName,
    column: String,
    setting: Cow<'static, str>,
    policy_name: Cow<'static, str>,
    grantees: Vec<String>,
    hardened: bool,
    per_statement: bool,
}

impl RlsPolicy {
    /// The policy for `table` on its tenant `column`, reading the default
    /// tenant setting (`app.current_tenant`).
    pub fn new(table: impl Into<TableName>, column: impl Into<String>) -> Self {
        RlsPolicy {
            table: table.into(),
            column: column.into(),
            setting: Cow::Owned(SettingNames::default().tenant().to_owned()),
            policy_name: Cow::Borrowed(DEFAULT_POLICY_NAME),
            grantees: Vec::new(),
            hardened: false,
            per_statement: false,
        }
    }

    /// Reads the tenant setting named in `settings` (use the same
    /// [`SettingNames`] as the pool).
    pub fn setting_names(mut self, settings: &SettingNames) -> Self {
        self.setting = Cow::Owned(settings.tenant().to_owned());
        self
    }

    /// Names the policy (default [`DEFAULT_POLICY_NAME`]); names are per
    /// table, so the default only clashes with a policy of the same table.
    pub fn policy_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.policy_name = name.into();
        self
    }

    /// Also grants `role` the DML privileges ([`GRANTED_PRIVILEGES`]) on the
    /// table. May be called more than once. The role still needs `USAGE` on
    /// the table's schema, which is granted once per schema, not per table.
    pub fn grant_to(mut self, role: impl Into<String>) -> Self {
        self.grantees.push(role.into());
        self
    }

    /// Hardened mode (see [`guard`](crate::guard)): the policy reads
    /// `(SELECT tenant_guard.current_tenant())`, which is the tenant only
    /// when the transaction also carries the pool's proof, instead of the
    /// bare setting, which any SQL of the application can change.
    pub fn hardened(mut self, hardened: bool) -> Self {
        self.hardened = hardened;
        self
    }

    /// Reads the tenant setting once per statement, in a sub-select
    /// (`col = (SELECT NULLIF(current_setting(…), ''))`), instead of once
    /// per index scan (default `false`).
    ///
    /// The default form is what the planner treats like a hand-written
    /// `WHERE col = $1`: an index condition on a tenant-leading index, read
    /// once per scan, and the cheapest for the short statements of a
    /// request handler (the sub-select's init-plan costs a few microseconds
    /// on every statement: inserts and updates measured 5–11% slower than
    /// a hand-written `WHERE`, against 1–6% in the default form). But
    /// where PostgreSQL scans a table sequentially and filters it (a tenant
    /// that holds most of a table, a query that cannot use the tenant
    /// index), the default form reads the setting on every row, about
    /// 0.25 µs each: a scan of a million rows measured 370 ms against 250 ms
    /// in this form. Choose this form for tables that are scanned that way.
    /// Both forms pass the audit.
    ///
    /// ```
    /// use tenant_sqlx::rls::RlsPolicy;
    ///
    /// assert_eq!(
    ///     RlsPolicy::new("events", "tenant_id").per_statement(true).condition(),
    ///     r#""tenant_id" = (SELECT NULLIF(current_setting('app.current_tenant', true), ''))"#
    /// );
    /// ```
    pub fn per_statement(mut self, per_statement: bool) -> Self {
        self.per_statement = per_statement;
        self
    }

    /// The table the policy is for.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The condition used in both `USING` and `WITH CHECK`.
    ///
    /// ```
    /// use tenant_sqlx::rls::RlsPolicy;
    ///
    /// assert_eq!(
    ///     RlsPolicy::new("messages", "tenant_id").condition(),
    ///     r#""tenant_id" = NULLIF(current_setting('app.current_tenant', true), '')"#
    /// );
    /// ```
    pub fn condition(&self) -> String {
        if self.hardened {
            return format!(
                "{} = (SELECT {})",
                quote_ident(&self.column),
                crate::guard::GUARD_FUNCTION
            );
        }
        let setting = format!(
            "NULLIF(current_setting({}, true), '')",
            quote_literal(&self.setting)
        );
        if self.per_statement {
            format!("{} = (SELECT {setting})", quote_ident(&self.column))
        } else {
            format!("{} = {setting}", quote_ident(&self.column))
        }
    }

    /// The statements, in order, without trailing semicolons.
    pub fn statements(&self) -> Vec<String> {
        let table = self.table.to_string();
        let condition = self.condition();
        let mut statements = vec![
            format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
            // AS PERMISSIVE and TO PUBLIC are the defaults, spelled out so a
            // reader of the migration need not know them.
            format!(
                "CREATE POLICY {} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC \
                 USING ({condition}) WITH CHECK ({condition})",
                quote_ident(&self.policy_name)
            ),
        ];
        for role in &self.grantees {
            statements.push(format!(
                "GRANT {GRANTED_PRIVILEGES} ON {table} TO {}",
                quote_ident(role)
            ));
        }
        statements
    }

    /// All [`statements`](Self::statements) as one script, each ended by
    /// `;` and a newline, ready for a `.sql` migration or a simple query.
    pub fn sql(&self) -> String {
        self.statements()
            .into_iter()
            .map(|statement| statement + ";\n")
            .collect()
    }
}

impl RlsPolicy {
    /// [`sql`](Self::sql) for a migration that may run more than once:
    /// `ENABLE`, `FORCE` and `GRANT` are idempotent as they are, and the
    /// `CREATE POLICY` runs only if the table has no policy of that name
    /// yet. (`DROP POLICY IF EXISTS` first would widen access for an
    /// instant, and print a notice on every first run.) An existing policy
    /// of that name is left as it is, even if its condition differs: change
    /// one with `ALTER POLICY`.
    ///
    /// ```
    /// use tenant_sqlx::rls::RlsPolicy;
    ///
    /// let sql = RlsPolicy::new("public.messages", "tenant_id").idempotent_sql();
    /// assert!(sql.contains("IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy"));
    /// assert!(sql.contains(r#"polrelid = '"public"."messages"'::regclass"#));
    /// ```
    pub fn idempotent_sql(&self) -> String {
        let table = quote_literal(&self.table.to_string());
        let name = quote_literal(&self.policy_name);
        let mut sql = String::new();
        for statement in self.statements() {
            if statement.starts_with("CREATE POLICY") {
                // A dollar-quote tag that the statement does not contain
                // (a hostile name could hold `$rls$`).
                let mut tag = String::from("$rls$");
                let mut n = 0;
                while statement.contains(&tag[..tag.len() - 1]) {
                    n += 1;
                    tag = format!("$rls{n}$");
                }
                sql.push_str(&format!(
                    "DO {tag} BEGIN\n\
                     \x20   IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy\n\
                     \x20       WHERE polrelid = {table}::regclass AND polname = {name}) THEN\n\
                     \x20       {statement};\n\
                     \x20   END IF;\n\
                     END {tag};\n"
                ));
            } else {
                sql.push_str(&statement);
                sql.push_str(";\n");
            }
        }
        sql
    }
}

/// Writes the script, as [`RlsPolicy::sql`].
impl fmt::Display for RlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_inner_quotes_doubled() {
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident("Mixed Case"), r#""Mixed Case""#);
        assert_eq!(quote_ident(r#"""#), r#""""""#);
        assert_eq!(
            quote_ident(r#"x" USING (true); --"#),
            r#""x"" USING (true); --""#
        );
        assert_eq!(quote_ident("naïve"), "\"naïve\"");
    }

    /// Reads a quoted identifier back the way PostgreSQL's lexer does; the
    /// identifier must end exactly at the end of the text.
    fn unquote_ident(quoted: &str) -> Option<String> {
        let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(ch) = chars.next() {
            if ch == '"' {
                // A lone quote would end the identifier early.
                if chars.next()? != '"' {
                    return None;
                }
            }
            out.push(ch);
        }
        Some(out)
    }

    #[test]
    fn hostile_identifiers_round_trip() {
        for hostile in [
            r#"a"b"#,
            r#"""""#,
            r#"t"; DROP TABLE users; --"#,
            "new\nline",
            r"back\slash",
            "'single'",
        ] {
            assert_eq!(
                unquote_ident(&quote_ident(hostile)).as_deref(),
                Some(hostile)
            );
        }
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal("'"), "''''");
        assert_eq!(
            quote_literal("x', true)) OR true --"),
            "'x'', true)) OR true --'"
        );
        // With standard_conforming_strings off, '\' would escape the quote;
        // the E'' form with doubled backslashes means the same either way.
        assert_eq!(quote_literal(r"\"), r"E'\\'");
        assert_eq!(quote_literal(r"a\' OR true"), r"E'a\\'' OR true'");
    }

    #[test]
    fn table_names_split_at_the_first_dot() {
        assert_eq!(
            TableName::from("public.messages"),
            TableName::qualified("public", "messages")
        );
        assert_eq!(TableName::from("a.b.c"), TableName::qualified("a", "b.c"));
        assert_eq!(TableName::from("plain").schema(), None);
        assert_eq!(
            TableName::from(r#"s"x.t"y"#).to_string(),
            r#""s""x"."t""y""#
        );
    }

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        let policy = RlsPolicy::new(r#"evil"; DROP SCHEMA public; --.t"#, r#"c" OR true OR "x"#)
            .setting_names(&SettingNames::default().rename_tenant("app.t', true) OR true OR ('"))
            .policy_name(r#"p" ON x USING (true); --"#)
            .grant_to(r#"app"; ALTER ROLE app SUPERUSER; --"#);
        let statements = policy.statements();
        assert_eq!(
            statements[0],
            r#"ALTER TABLE "evil""; DROP SCHEMA public; --"."t" ENABLE ROW LEVEL SECURITY"#
        );
        assert_eq!(
            policy.condition(),
            r#""c"" OR true OR ""x" = NULLIF(current_setting('app.t'', true) OR true OR (''', true), '')"#
        );
        assert_eq!(
            statements[2],
            format!(
                r#"CREATE POLICY "p"" ON x USING (true); --" ON "evil""; DROP SCHEMA public; --"."t" AS PERMISSIVE FOR ALL TO PUBLIC USING ({c}) WITH CHECK ({c})"#,
                c = policy.condition()
            )
        );
        assert_eq!(
            statements[3],
            r#"GRANT SELECT, INSERT, UPDATE, DELETE ON "evil""; DROP SCHEMA public; --"."t" TO "app""; ALTER ROLE app SUPERUSER; --""#
        );
    }

    #[test]
    fn idempotent_script_guards_only_the_create_and_survives_hostile_names() {
        let sql = RlsPolicy::new("t", "tenant_id")
            .grant_to("app")
            .idempotent_sql();
        assert_eq!(sql.matches("DO $rls$").count(), 1);
        assert!(sql.starts_with("ALTER TABLE \"t\" ENABLE ROW LEVEL SECURITY;\n"));
        assert!(sql.ends_with("GRANT SELECT, INSERT, UPDATE, DELETE ON \"t\" TO \"app\";\n"));
        // A name holding the dollar-quote tag gets another tag.
        let sql = RlsPolicy::new("t", "tenant_id")
            .policy_name("p$rls$x")
            .idempotent_sql();
        assert!(sql.contains("DO $rls1$ BEGIN"), "{sql}");
        assert!(sql.contains("polname = 'p$rls$x'"), "{sql}");
        assert!(sql.contains("END $rls1$;"), "{sql}");
    }

    #[test]
    fn script_ends_every_statement() {
        let sql = RlsPolicy::new("t", "tenant_id").sql();
        assert_eq!(sql.matches(";\n").count(), 3);
        assert!(sql.ends_with(";\n"));
    }
}
