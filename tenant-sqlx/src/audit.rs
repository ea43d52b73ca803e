//! The start-up audit: is this database really isolating tenants for the role
//! the pool connects as?
//!
//! Row-Level Security fails open in quiet ways: a superuser or `BYPASSRLS`
//! role, a table without `FORCE` read by its owner, a policy that forgot its
//! `WITH CHECK`, a `USING (true)` left over from debugging, a default tenant
//! stored on the role. None of them raises an error; every one of them lets a
//! tenant see or write another tenant's rows. [`run`] looks for each of them
//! in the catalogs, as the role that will serve requests, and returns an
//! [`AuditReport`] with one [`Finding`] per problem. The pool runs it when it
//! connects and refuses to start on any finding unless told otherwise.
//!
//! # What counts as a tenant table
//!
//! An ordinary or partitioned table, in a schema other than PostgreSQL's own
//! (`pg_catalog`, `information_schema`, TOAST and temporary schemas), that has
//! a column named like the tenant column, **and that the role can reach**:
//! it has `USAGE` on the schema and some privilege on the table (or owns it).
//! Tables the application cannot touch cannot leak through it, and a
//! database shared with other services should not stop this one from
//! starting.
//!
//! # What is not checked
//!
//! The audit reads the catalogs; it cannot prove a policy expression right.
//! It recognises a policy as "using the setting" when the setting's name
//! appears in it as a string literal (as in the policy [`RlsPolicy`] writes),
//! and an always-true policy only when PostgreSQL prints the expression as
//! `true`. A second permissive policy with some other condition (say
//! `USING (is_public)`) widens access too, since permissive policies are
//! combined with OR, but may be deliberate, so it is not reported. Only
//! policies that apply to the role (to `PUBLIC`, or to a role it is or can
//! become) are considered, and restrictive ones only count as "using the
//! setting": they can narrow access, never widen it. Views, functions
//! declared `SECURITY DEFINER` and foreign tables are not examined.
//!
//! [`RlsPolicy`]: crate::rls::RlsPolicy
//!
//! ```no_run
//! # async fn check() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::Connection;
//! use tenant_sqlx::{audit, Settings};
//!
//! let mut conn = sqlx::PgConnection::connect("postgres://app@localhost/app").await?;
//! let report = audit::run(&mut conn, &Settings::default(), "tenant_id").await?;
//! if !report.is_clean() {
//!     // One line per finding, each saying how to fix it.
//!     eprintln!("{report}");
//!     for finding in &report.findings {
//!         eprintln!("{}", finding.code());
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fmt;

use tenant_core::Field;

use crate::rls::quote_literal;
use crate::Settings;

/// What the audit found. Empty means the database is configured safely, as
/// far as the audit can tell.
///
/// `Display` writes one finding per line, each with its code and its fix.
///
/// ```
/// use tenant_sqlx::audit::{AuditReport, Finding};
///
/// let report = AuditReport { findings: vec![Finding::RlsNotForced { table: "public.messages".into() }] };
/// assert!(!report.is_clean());
/// assert_eq!(report.codes(), ["RLS_NOT_FORCED"]);
/// assert!(report.to_string().contains("ALTER TABLE public.messages FORCE ROW LEVEL SECURITY"));
/// assert!(AuditReport::default().is_clean());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Every problem found, in a stable order: roles, then tables by name,
    /// then stored settings.
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// `true` when there is no finding.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The [`code`](Finding::code) of every finding, in order.
    pub fn codes(&self) -> Vec<&'static str> {
        self.findings.iter().map(Finding::code).collect()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return f.write_str("the row-level security audit found nothing to fix");
        }
        write!(
            f,
            "the row-level security audit found {} problem{}:",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        )?;
        for finding in &self.findings {
            write!(f, "\n- [{}] {finding}", finding.code())?;
        }
        Ok(())
    }
}

/// Which clause of a policy a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyClause {
    /// `USING (…)`: the rows a command can see, update or delete.
    Using,
    /// `WITH CHECK (…)`: the rows a command may write.
    WithCheck,
}

impl fmt::Display for PolicyClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyClause::Using => "USING",
            PolicyClause::WithCheck => "WITH CHECK",
        })
    }
}

/// One problem the audit found.
///
/// Table, role and database names are written as SQL identifiers, quoted
/// where PostgreSQL needs it (`public.messages`, `public."Odd Name"`), so the
/// statement in each message can be run as printed. Each variant has a stable
/// [`code`](Self::code).
///
/// ```
/// use tenant_sqlx::audit::Finding;
///
/// let finding = Finding::BypassRls { role: "app".into() };
/// assert_eq!(finding.code(), "ROLE_BYPASSES_RLS");
/// assert!(finding.to_string().contains("ALTER ROLE app NOBYPASSRLS"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Finding {
    /// The role the pool connects as is a superuser, so no policy applies to
    /// it.
    #[error(
        "the role {role} is a superuser, and row-level security never applies to superusers: \
         connect as a role made with NOSUPERUSER NOBYPASSRLS (or run `ALTER ROLE {role} NOSUPERUSER`)"
    )]
    Superuser {
        /// The role.
        role: String,
    },
    /// The role has the `BYPASSRLS` attribute, so no policy applies to it.
    #[error(
        "the role {role} has BYPASSRLS, so row-level security does not apply to it: \
         run `ALTER ROLE {role} NOBYPASSRLS`"
    )]
    BypassRls {
        /// The role.
        role: String,
    },
    /// The role is a member, directly or through other roles, of a superuser
    /// or `BYPASSRLS` role, and can `SET ROLE` to it at any time.
    #[error(
        "the role {role} is a member of {member_of}, which {what}, so a `SET ROLE {member_of}` \
         turns row-level security off: run `REVOKE {member_of} FROM {role}` (or revoke the \
         intermediate role that grants it)",
        what = privileged_what(*superuser, *bypass_rls)
    )]
    MemberOfPrivilegedRole {
        /// The role the pool connects as.
        role: String,
        /// The privileged role it belongs to.
        member_of: String,
        /// `member_of` is a superuser.
        superuser: bool,
        /// `member_of` has `BYPASSRLS`.
        bypass_rls: bool,
    },
    /// A tenant table has row-level security disabled: every policy is
    /// ignored.
    #[error(
        "the tenant table {table} has row-level security disabled, so its policies are ignored: \
         run `ALTER TABLE {table} ENABLE ROW LEVEL SECURITY`"
    )]
    RlsNotEnabled {
        /// The table.
        table: String,
    },
    /// A tenant table has row-level security enabled but not forced: its
    /// owner (and every role that can act as the owner) bypasses the
    /// policies.
    #[error(
        "the tenant table {table} does not force row-level security, so its owner bypasses the \
         policies: run `ALTER TABLE {table} FORCE ROW LEVEL SECURITY`"
    )]
    RlsNotForced {
        /// The table.
        table: String,
    },
    /// A tenant table is owned by the role the pool connects as, or by a
    /// role it belongs to: without `FORCE` the owner bypasses the policies,
    /// and with it the owner can still drop them or turn RLS off.
    #[error(
        "the tenant table {table} is owned by {by}, so the application could drop its policies \
         or disable row-level security: run `ALTER TABLE {table} OWNER TO <a migration role>` \
         and grant {role} only SELECT, INSERT, UPDATE, DELETE",
        by = owned_by(owner, role)
    )]
    TableOwnedByApplicationRole {
        /// The table.
        table: String,
        /// Its owner.
        owner: String,
        /// The role the pool connects as.
        role: String,
    },
    /// The role may `TRUNCATE` a tenant table; `TRUNCATE` ignores
    /// row-level security and empties the table for every tenant.
    #[error(
        "the role {role} may TRUNCATE the tenant table {table}, and TRUNCATE ignores row-level \
         security (it empties the table for every tenant): run `REVOKE TRUNCATE ON {table} FROM {role}`"
    )]
    TruncateAllowed {
        /// The table.
        table: String,
        /// The role the pool connects as.
        role: String,
    },
    /// No policy that applies to the role reads the tenant setting, so the
    /// table is either closed to everyone or open by some other rule.
    #[error(
        "the tenant table {table} has no policy for this role that reads the setting `{setting}`: \
         create one with `tenant_sqlx::rls::RlsPolicy`, i.e. `CREATE POLICY tenant_isolation ON \
         {table} FOR ALL USING (<col> = (SELECT NULLIF(current_setting('{setting}', true), ''))) \
         WITH CHECK (<same>)`"
    )]
    NoTenantPolicy {
        /// The table.
        table: String,
        /// The tenant setting the audit looked for.
        setting: String,
    },
    /// A permissive policy for `ALL`, `INSERT` or `UPDATE` has no `WITH
    /// CHECK`.
    ///
    /// For `ALL` and `UPDATE`, PostgreSQL then checks new rows with the
    /// `USING` expression, so the policy may be safe today; it is still
    /// reported, because which rows may be *written* is then decided by a
    /// clause written to say which rows may be *read*: the day someone
    /// widens `USING` (shared rows, a support role), writes silently widen
    /// with it. For `INSERT` the policy checks nothing useful at all. Stating
    /// `WITH CHECK` makes the write rule visible and reviewable.
    #[error(
        "the policy {policy} on {table} is a permissive {command} policy without WITH CHECK, so \
         which rows may be written is left implicit: recreate it with \
         `WITH CHECK (<col> = (SELECT NULLIF(current_setting('<tenant setting>', true), '')))`"
    )]
    WritePolicyWithoutCheck {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// `ALL`, `INSERT` or `UPDATE`.
        command: String,
    },
    /// A permissive policy's `USING` or `WITH CHECK` is `true`: permissive
    /// policies are OR-ed, so this one opens the table to every tenant.
    #[error(
        "the policy {policy} on {table} is permissive with `{clause} (true)`; permissive policies \
         are combined with OR, so it lets every tenant's rows through: run \
         `DROP POLICY {policy} ON {table}` (or make it restrictive, or tie it to the tenant setting)"
    )]
    PermissiveAlwaysTrue {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// The clause that is `true`.
        clause: PolicyClause,
    },
    /// A default value for a context setting is stored on the role, the
    /// database or both (`ALTER ROLE/DATABASE … SET`): every connection
    /// starts inside that tenant, and a transaction without a tenant sees
    /// its rows.
    #[error(
        "a default `{setting} = '{value}'` is stored {scope}, so every connection starts with a \
         tenant: run `{fix}`",
        scope = stored_scope(role.as_deref(), database.as_deref()),
        fix = stored_fix(setting, role.as_deref(), database.as_deref())
    )]
    StoredDefault {
        /// The setting.
        setting: String,
        /// The role it is stored for, `None` for all roles.
        role: Option<String>,
        /// The database it is stored for, `None` for all databases.
        database: Option<String>,
        /// The stored value.
        value: String,
    },
    /// A setting that shapes every transaction or what its statements
    /// resolve to (`default_transaction_read_only`, the default isolation
    /// level, `search_path`, `role`, `row_security`, ...) is stored on the
    /// role or the database. Any role can store such settings for itself
    /// (`ALTER ROLE CURRENT_USER SET …`), also from inside a tenant
    /// transaction, and they outlive restarts: one tenant's code could make
    /// every tenant's transactions read-only, or resolve table names to
    /// another schema.
    #[error(
        "`{setting} = '{value}'` is stored {scope}, so it shapes every new session of every \
         tenant: run `{fix}`",
        scope = stored_scope(role.as_deref(), database.as_deref()),
        fix = stored_fix(setting, role.as_deref(), database.as_deref())
    )]
    StoredSessionSetting {
        /// The setting.
        setting: String,
        /// The role it is stored for, `None` for all roles.
        role: Option<String>,
        /// The database it is stored for, `None` for all databases.
        database: Option<String>,
        /// The stored value.
        value: String,
    },
    /// `track_activities` is on for the role: every session of the role can
    /// read the current statement of every other session of the same role
    /// in `pg_stat_activity`, including the begin message of a transaction
    /// with another tenant's id (and, in hardened mode, its proof).
    #[error(
        "`track_activities` is on for the role {role}, so each of its sessions can read the \
         statements of the others in pg_stat_activity, other tenants' ids included: as a \
         superuser, run `ALTER ROLE {role} SET track_activities = off`"
    )]
    QueryTextVisible {
        /// The role.
        role: String,
    },
    /// `pg_stat_statements` records utility statements
    /// (`pg_stat_statements.track_utility = on`, its default): the begin
    /// messages, with tenant ids in them, are kept and readable by the role.
    #[error(
        "pg_stat_statements records utility statements, so the tenant settings of every begin \
         message are kept with their values: as a superuser, run \
         `ALTER SYSTEM SET pg_stat_statements.track_utility = off` and reload"
    )]
    UtilityStatementsTracked,
    /// A context setting already has a value in a fresh session, from a
    /// source the catalogs do not show (`postgresql.conf`, `-c` in the
    /// connection options, `PGOPTIONS`).
    #[error(
        "the setting `{setting}` is already '{value}' in a fresh session, so a connection without \
         a tenant acts for that one: remove it from postgresql.conf and from the connection's \
         `options`/PGOPTIONS"
    )]
    PresetInSession {
        /// The setting.
        setting: String,
        /// Its value at connection time.
        value: String,
    },
}

fn privileged_what(superuser: bool, bypass_rls: bool) -> &'static str {
    match (superuser, bypass_rls) {
        (true, true) => "is a superuser with BYPASSRLS",
        (true, false) => "is a superuser",
        _ => "has BYPASSRLS",
    }
}

fn owned_by(owner: &str, role: &str) -> String {
    if owner == role {
        format!("the application role {role}")
    } else {
        format!("{owner}, a role that the application role {role} belongs to")
    }
}

fn stored_scope(role: Option<&str>, database: Option<&str>) -> String {
    match (role, database) {
        (Some(role), Some(db)) => format!("for the role {role} in the database {db}"),
        (Some(role), None) => format!("for the role {role}"),
        (None, Some(db)) => format!("for the database {db}"),
        (None, None) => "for all roles".to_owned(),
    }
}

fn stored_fix(setting: &str, role: Option<&str>, database: Option<&str>) -> String {
    match (role, database) {
        (Some(role), Some(db)) => format!("ALTER ROLE {role} IN DATABASE {db} RESET {setting}"),
        (Some(role), None) => format!("ALTER ROLE {role} RESET {setting}"),
        (None, Some(db)) => format!("ALTER DATABASE {db} RESET {setting}"),
        (None, None) => format!("ALTER ROLE ALL RESET {setting}"),
    }
}

impl Finding {
    /// A stable, machine-readable code, such as `RLS_NOT_FORCED`.
    pub fn code(&self) -> &'static str {
        match self {
            Finding::Superuser { .. } => "ROLE_IS_SUPERUSER",
            Finding::BypassRls { .. } => "ROLE_BYPASSES_RLS",
            Finding::MemberOfPrivilegedRole { .. } => "ROLE_MEMBER_OF_PRIVILEGED",
            Finding::RlsNotEnabled { .. } => "RLS_NOT_ENABLED",
            Finding::RlsNotForced { .. } => "RLS_NOT_FORCED",
            Finding::TableOwnedByApplicationRole { .. } => "TABLE_OWNED_BY_APP_ROLE",
            Finding::TruncateAllowed { .. } => "TRUNCATE_ALLOWED",
            Finding::NoTenantPolicy { .. } => "TENANT_POLICY_MISSING",
            Finding::WritePolicyWithoutCheck { .. } => "WRITE_POLICY_WITHOUT_CHECK",
            Finding::PermissiveAlwaysTrue { .. } => "PERMISSIVE_POLICY_TRUE",
            Finding::StoredDefault { .. } => "SETTING_STORED_DEFAULT",
            Finding::PresetInSession { .. } => "SETTING_PRESET_IN_SESSION",
            Finding::StoredSessionSetting { .. } => "SETTING_STORED_FOR_SESSIONS",
            Finding::QueryTextVisible { .. } => "QUERY_TEXT_VISIBLE",
            Finding::UtilityStatementsTracked => "UTILITY_STATEMENTS_TRACKED",
        }
    }

    /// The table the finding is about, for findings about one table.
    pub fn table(&self) -> Option<&str> {
        match self {
            Finding::RlsNotEnabled { table }
            | Finding::RlsNotForced { table }
            | Finding::TableOwnedByApplicationRole { table, .. }
            | Finding::TruncateAllowed { table, .. }
            | Finding::NoTenantPolicy { table, .. }
            | Finding::WritePolicyWithoutCheck { table, .. }
            | Finding::PermissiveAlwaysTrue { table, .. } => Some(table),
            _ => None,
        }
    }
}

/// Roles the connection is, or can become: itself, the session role (a
/// `RESET ROLE` away) and every role either belongs to. A superuser is a
/// member of every role, so its memberships are not reported one by one.
const PRIVILEGED_ROLES: &str = "\
SELECT format('%I', r.rolname), r.rolsuper, r.rolbypassrls,
       r.rolname IN (current_user, session_user),
       format('%I', CASE WHEN pg_has_role(current_user, r.oid, 'MEMBER')
                         THEN current_user ELSE session_user END)
FROM pg_roles r
WHERE (r.rolsuper OR r.rolbypassrls)
  AND (pg_has_role(current_user, r.oid, 'MEMBER') OR pg_has_role(session_user, r.oid, 'MEMBER'))
ORDER BY r.rolname";

/// Tenant tables the role can reach (see the module docs). `owned` covers
/// membership in the owning role because PostgreSQL treats every member
/// that can act as the owner as the owner, for RLS bypass and for `ALTER`.
const TENANT_TABLES: &str = "\
SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname),
       c.relrowsecurity, c.relforcerowsecurity,
       format('%I', pg_get_userbyid(c.relowner)),
       pg_has_role(current_user, c.relowner, 'MEMBER')
           OR pg_has_role(session_user, c.relowner, 'MEMBER'),
       has_table_privilege(c.oid, 'TRUNCATE')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE a.attname = $1
  AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
       OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER')
       OR pg_has_role(c.relowner, 'MEMBER'))
ORDER BY 2";

/// The policies of those tables that apply to the role: to `PUBLIC` or to a
/// role it is or can become.
const POLICIES: &str = "\
SELECT p.polrelid::int8, format('%I', p.polname), p.polpermissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p
WHERE p.polrelid::int8 = ANY($1)
  AND (0::oid = ANY(p.polroles)
       OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid)
                  WHERE pg_has_role(current_user, r.oid, 'MEMBER')
                     OR pg_has_role(session_user, r.oid, 'MEMBER')))
ORDER BY p.polrelid, p.polname";

/// Stored settings that apply to this connection: for all roles or its own
/// (current or session) role, in all databases or this one.
const STORED_SETTINGS: &str = "\
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE format('%I', r.rolname) END,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE format('%I', d.datname) END,
       cfg
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE (s.setdatabase = 0 OR d.datname = current_database())
  AND (s.setrole = 0 OR r.rolname IN (current_user, session_user))
ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3";

/// What the audit checks a database against: the pool's configuration.
///
/// ```
/// use tenant_sqlx::audit::AuditOptions;
/// use tenant_sqlx::Settings;
///
/// let options = AuditOptions::new(Settings::default(), "tenant_id")
///     .hardened(true)
///     .allow_policy("notes_public_read");
/// assert!(options.is_hardened());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    settings: Settings,
    tenant_column: String,
    hardened: bool,
    allowed_policies: Vec<String>,
}

impl AuditOptions {
    /// The checks for a pool writing `settings`, on tables marked by
    /// `tenant_column`.
    pub fn new(settings: Settings, tenant_column: impl Into<String>) -> Self {
        AuditOptions {
            settings,
            tenant_column: tenant_column.into(),
            hardened: false,
            allowed_policies: Vec::new(),
        }
    }

    /// Hardened mode (see [`guard`](crate::guard)): policies must read the
    /// guard function, not the bare setting, and the guard itself is
    /// checked.
    pub fn hardened(mut self, hardened: bool) -> Self {
        self.hardened = hardened;
        self
    }

    /// A permissive policy, by name, that the application declares on
    /// purpose although it is not bound to the tenant (say, public rows
    /// readable by every tenant): not reported.
    pub fn allow_policy(mut self, name: impl Into<String>) -> Self {
        self.allowed_policies.push(name.into());
        self
    }

    /// The setting names.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The column that marks a tenant table.
    pub fn tenant_column(&self) -> &str {
        &self.tenant_column
    }

    /// Whether hardened mode is checked.
    pub fn is_hardened(&self) -> bool {
        self.hardened
    }

    /// The policies declared on purpose.
    pub fn allowed_policies(&self) -> &[String] {
        &self.allowed_policies
    }
}

/// Runs the audit on `conn`, as the role that will serve requests, with
/// the default [`AuditOptions`] for `settings` and `tenant_column`.
///
/// `tenant_column` names the column that marks a tenant table; `settings`
/// gives the setting names (all four are checked for stored defaults; the
/// tenant one is what policies must read). The connection should be fresh:
/// a session-level `SET` would be reported as
/// [`Finding::PresetInSession`].
///
/// Errors are only the database's: the audit itself never fails on what it
/// finds.
pub async fn run(
    conn: &mut sqlx::PgConnection,
    settings: &Settings,
    tenant_column: &str,
) -> Result<AuditReport, sqlx::Error> {
    run_with(conn, &AuditOptions::new(settings.clone(), tenant_column)).await
}

/// Runs the audit on `conn` with `options`; see [`run`].
pub async fn run_with(
    conn: &mut sqlx::PgConnection,
    options: &AuditOptions,
) -> Result<AuditReport, sqlx::Error> {
    let settings = &options.settings;
    let tenant_column = options.tenant_column.as_str();
    let mut findings = Vec::new();
    let superuser = audit_roles(conn, &mut findings).await?;
    audit_tables(conn, settings, tenant_column, superuser, &mut findings).await?;
    audit_settings(conn, settings, &mut findings).await?;
    Ok(AuditReport { findings })
}

/// Returns whether the role is itself a superuser.
async fn audit_roles(
    conn: &mut sqlx::PgConnection,
    findings: &mut Vec<Finding>,
) -> Result<bool, sqlx::Error> {
    let rows: Vec<(String, bool, bool, bool, String)> = sqlx::query_as(PRIVILEGED_ROLES)
        .fetch_all(&mut *conn)
        .await?;
    let own_superuser = rows.iter().any(|(_, sup, _, own, _)| *own && *sup);
    for (role, superuser, bypass_rls, own, member) in rows {
        if own {
            if superuser {
                findings.push(Finding::Superuser { role: role.clone() });
            }
            if bypass_rls {
                findings.push(Finding::BypassRls { role });
            }
        } else if !own_superuser {
            findings.push(Finding::MemberOfPrivilegedRole {
                role: member,
                member_of: role,
                superuser,
                bypass_rls,
            });
        }
    }
    Ok(own_superuser)
}

/// A row of [`TENANT_TABLES`]: oid, name, enabled, forced, owner, owned by
/// the role, role may truncate.
type TableRow = (i64, String, bool, bool, String, bool, bool);

/// A row of [`POLICIES`]: table oid, name, permissive, command, `USING`,
/// `WITH CHECK`.
type PolicyRow = (i64, String, bool, String, Option<String>, Option<String>);

async fn audit_tables(
    conn: &mut sqlx::PgConnection,
    settings: &Settings,
    tenant_column: &str,
    superuser: bool,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let tables: Vec<TableRow> = sqlx::query_as(TENANT_TABLES)
        .bind(tenant_column)
        .fetch_all(&mut *conn)
        .await?;
    if tables.is_empty() {
        return Ok(());
    }
    let oids: Vec<i64> = tables.iter().map(|t| t.0).collect();
    let policies: Vec<PolicyRow> = sqlx::query_as(POLICIES)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await?;
    let role: String = sqlx::query_scalar("SELECT format('%I', current_user)")
        .fetch_one(&mut *conn)
        .await?;
    // GUC names are case-insensitive, and PostgreSQL prints the literal as
    // written, so compare in lower case.
    let setting_literal = quote_literal(&settings.tenant().to_lowercase());
    let reads_setting = |expr: &Option<String>| {
        expr.as_deref()
            .is_some_and(|e| e.to_lowercase().contains(&setting_literal))
    };

    for (oid, table, enabled, forced, owner, owned, can_truncate) in tables {
        if !enabled {
            findings.push(Finding::RlsNotEnabled {
                table: table.clone(),
            });
        }
        if !forced {
            findings.push(Finding::RlsNotForced {
                table: table.clone(),
            });
        }
        if superuser {
            // A superuser owns and may truncate everything; that is one
            // finding, already reported, not one per table.
        } else if owned {
            findings.push(Finding::TableOwnedByApplicationRole {
                table: table.clone(),
                owner,
                role: role.clone(),
            });
        } else if can_truncate {
            // An owner may always truncate; that is covered by the finding above.
            findings.push(Finding::TruncateAllowed {
                table: table.clone(),
                role: role.clone(),
            });
        }

        let table_policies = policies.iter().filter(|p| p.0 == oid);
        let mut uses_setting = false;
        for (_, policy, permissive, command, using, check) in table_policies {
            uses_setting |= reads_setting(using) || reads_setting(check);
            if !permissive {
                // A restrictive policy can only narrow access, so a missing
                // or trivial clause there cannot open anything.
                continue;
            }
            if matches!(command.as_str(), "ALL" | "INSERT" | "UPDATE") && check.is_none() {
                findings.push(Finding::WritePolicyWithoutCheck {
                    table: table.clone(),
                    policy: policy.clone(),
                    command: command.clone(),
                });
            }
            for (clause, expr) in [
                (PolicyClause::Using, using),
                (PolicyClause::WithCheck, check),
            ] {
                if expr.as_deref().map(str::trim) == Some("true") {
                    findings.push(Finding::PermissiveAlwaysTrue {
                        table: table.clone(),
                        policy: policy.clone(),
                        clause,
                    });
                }
            }
        }
        if !uses_setting {
            findings.push(Finding::NoTenantPolicy {
                table,
                setting: settings.tenant().to_owned(),
            });
        }
    }
    Ok(())
}

async fn audit_settings(
    conn: &mut sqlx::PgConnection,
    settings: &Settings,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = Field::ALL.iter().map(|f| settings.for_field(*f)).collect();
    let stored: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(STORED_SETTINGS)
        .fetch_all(&mut *conn)
        .await?;
    let mut explained = Vec::new();
    for (role, database, entry) in stored {
        // Entries are `name=value`; the name cannot contain `=`.
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        if let Some(setting) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
            explained.push(*setting);
            findings.push(Finding::StoredDefault {
                setting: (*setting).to_owned(),
                role,
                database,
                value: value.to_owned(),
            });
        } else if shapes_sessions(name, &names) {
            findings.push(Finding::StoredSessionSetting {
                setting: name.to_owned(),
                role,
                database,
                value: value.to_owned(),
            });
        }
    }

    let (role, track_activities, track_utility): (String, String, Option<String>) = sqlx::query_as(
        "SELECT format('%I', session_user), current_setting('track_activities'), \
                    current_setting('pg_stat_statements.track_utility', true)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if track_activities == "on" {
        findings.push(Finding::QueryTextVisible { role });
    }
    if track_utility.as_deref() == Some("on") {
        findings.push(Finding::UtilityStatementsTracked);
    }

    let current: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT s, current_setting(s, true) \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(s, i) ORDER BY i",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for (setting, value) in current {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        // A stored default shows up here too; it has been reported with its
        // source already.
        if !explained.iter().any(|e| *e == setting) {
            findings.push(Finding::PresetInSession { setting, value });
        }
    }
    Ok(())
}

/// Stored settings reported as [`Finding::StoredSessionSetting`]: those
/// that decide how every transaction runs or what a name in a statement
/// means, and any other setting under the prefix of a context setting
/// (`app.*`), which a policy might read.
fn shapes_sessions(name: &str, context_settings: &[&str]) -> bool {
    const SHAPING: [&str; 10] = [
        "default_transaction_read_only",
        "default_transaction_isolation",
        "default_transaction_deferrable",
        "transaction_read_only",
        "transaction_isolation",
        "search_path",
        "role",
        "session_authorization",
        "row_security",
        "session_replication_role",
    ];
    let name = name.to_ascii_lowercase();
    SHAPING.contains(&name.as_str())
        || context_settings.iter().any(|s| {
            s.split_once('.')
                .is_some_and(|(prefix, _)| name.starts_with(&format!("{prefix}.")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<Finding> {
        let table = || "public.notes".to_owned();
        vec![
            Finding::Superuser { role: "app".into() },
            Finding::BypassRls { role: "app".into() },
            Finding::MemberOfPrivilegedRole {
                role: "app".into(),
                member_of: "admins".into(),
                superuser: false,
                bypass_rls: true,
            },
            Finding::RlsNotEnabled { table: table() },
            Finding::RlsNotForced { table: table() },
            Finding::TableOwnedByApplicationRole {
                table: table(),
                owner: "app".into(),
                role: "app".into(),
            },
            Finding::TruncateAllowed {
                table: table(),
                role: "app".into(),
            },
            Finding::NoTenantPolicy {
                table: table(),
                setting: "app.current_tenant".into(),
            },
            Finding::WritePolicyWithoutCheck {
                table: table(),
                policy: "p".into(),
                command: "ALL".into(),
            },
            Finding::PermissiveAlwaysTrue {
                table: table(),
                policy: "p".into(),
                clause: PolicyClause::Using,
            },
            Finding::StoredDefault {
                setting: "app.current_tenant".into(),
                role: Some("app".into()),
                database: Some("db".into()),
                value: "acme".into(),
            },
            Finding::PresetInSession {
                setting: "app.current_tenant".into(),
                value: "acme".into(),
            },
            Finding::StoredSessionSetting {
                setting: "default_transaction_read_only".into(),
                role: Some("app".into()),
                database: None,
                value: "on".into(),
            },
            Finding::QueryTextVisible { role: "app".into() },
            Finding::UtilityStatementsTracked,
        ]
    }

    #[test]
    fn settings_that_shape_sessions_are_recognised() {
        let ours = ["app.current_tenant", "app.current_agent"];
        for name in [
            "default_transaction_read_only",
            "DEFAULT_TRANSACTION_ISOLATION",
            "search_path",
            "role",
            "row_security",
            "app.tenant_proof",
            "app.anything",
        ] {
            assert!(shapes_sessions(name, &ours), "{name}");
        }
        for name in [
            "statement_timeout",
            "work_mem",
            "application_name",
            "apple.x",
        ] {
            assert!(!shapes_sessions(name, &ours), "{name}");
        }
    }

    #[test]
    fn codes_are_distinct() {
        let findings = one_of_each();
        let mut codes: Vec<_> = findings.iter().map(Finding::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), findings.len());
    }

    #[test]
    fn every_message_names_a_fix() {
        for finding in one_of_each() {
            let message = finding.to_string();
            assert!(
                message.contains(": run `")
                    || message.contains(": connect as")
                    || message.contains(": create one")
                    || message.contains(": recreate it")
                    || message.contains(": remove it")
                    || message.contains(": as a superuser, run `"),
                "{message}"
            );
        }
    }

    #[test]
    fn stored_default_fix_matches_its_scope() {
        let fix = |role: Option<&str>, database: Option<&str>| {
            Finding::StoredDefault {
                setting: "app.current_tenant".into(),
                role: role.map(Into::into),
                database: database.map(Into::into),
                value: "acme".into(),
            }
            .to_string()
        };
        assert!(fix(Some("app"), Some("db"))
            .contains("`ALTER ROLE app IN DATABASE db RESET app.current_tenant`"));
        assert!(fix(Some("app"), None).contains("`ALTER ROLE app RESET app.current_tenant`"));
        assert!(fix(None, Some("db")).contains("`ALTER DATABASE db RESET app.current_tenant`"));
        assert!(fix(None, None).contains("`ALTER ROLE ALL RESET app.current_tenant`"));
    }

    #[test]
    fn report_lists_findings_with_codes() {
        let report = AuditReport {
            findings: one_of_each(),
        };
        let text = report.to_string();
        assert!(text.starts_with("the row-level security audit found 15 problems:"));
        assert_eq!(text.lines().count(), 16);
        assert!(text.contains("\n- [ROLE_IS_SUPERUSER] the role app is a superuser"));
    }
}
