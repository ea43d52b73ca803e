//! The start-up audit: is this database really isolating tenants for the role
//! the pool connects as?
//!
//! Row-Level Security fails open in quiet ways: a superuser or `BYPASSRLS`
//! role, a table without `FORCE` read by its owner, a policy that forgot its
//! `WITH CHECK`, a policy that is true for other tenants' rows, a view or a
//! function that reads with someone else's rights, a foreign key that looks
//! into another tenant, a default tenant stored on the role. None of them
//! raises an error; every one of them lets a tenant see or write another
//! tenant's rows. [`run`] looks for each of them in the catalogs, as the
//! role that will serve requests, and returns an [`AuditReport`] with one
//! [`Finding`] per problem. The pool runs it when it connects and refuses to
//! start on any finding unless told otherwise.
//!
//! # What counts as a tenant table
//!
//! An ordinary or partitioned table, in a schema other than PostgreSQL's own
//! (`pg_catalog`, `information_schema`, TOAST and temporary schemas), that has
//! a column named like the tenant column. The table checks (`ENABLE`,
//! `FORCE`, owner, `TRUNCATE`, policies) apply to those **that the role can
//! reach**: it has `USAGE` on the schema and some privilege on the table (or
//! owns it). Tables the application cannot touch cannot leak through it, and
//! a database shared with other services should not stop this one from
//! starting. A partition the role was granted a privilege on is reached
//! directly, past its parent's policies, and is checked as a table of its
//! own. Views, functions and foreign keys are checked against every tenant
//! table, reachable or not: they are how an unreachable one leaks.
//!
//! # Policies are read for what they mean
//!
//! PostgreSQL combines the permissive policies of a command with OR and the
//! restrictive ones with AND. So every permissive policy that applies to
//! the role (to `PUBLIC`, or to a role it is or can become) must be *bound
//! to the tenant* in its `USING` and its `WITH CHECK`: the expression, as
//! PostgreSQL prints it, is a conjunction one of whose terms is exactly
//! `<tenant column> = <tenant>`, where `<tenant>` is a fail-closed form of
//! the tenant setting (`NULLIF(current_setting('…', true), '')` as
//! [`RlsPolicy`] writes it, the same in a sub-select,
//! `current_setting('…')`, `current_setting('…', true)`, each optionally
//! cast to a plain type) or hardened mode's `(SELECT
//! tenant_guard.current_tenant())`. Other terms AND-ed to it only narrow
//! it. A top-level `OR`, `COALESCE(…, tenant_id)`, `… IS NULL`, `USING
//! (is_public)`: not bound, reported as
//! [`Finding::PolicyNotTenantBound`] (or [`Finding::PermissiveAlwaysTrue`]
//! for a plain `true`), unless
//!
//! * the application declares the policy on purpose, by name
//!   ([`AuditOptions::allow_policy`], the pool builder's `allow_policy`), or
//! * a restrictive policy bound to the tenant applies to the same command
//!   (or to `ALL`) and clause: then the permissive one can only widen
//!   access within the tenant.
//!
//! Expressions are read with `search_path = pg_catalog`, so a function or
//! operator from any other schema is printed schema-qualified and does not
//! pass for `current_setting` or `=`.
//!
//! In hardened mode a policy that compares the tenant column with the bare
//! setting is [`Finding::PolicyReadsBareSetting`]: SQL run by the
//! application can forge the setting, not the guard. Outside hardened mode
//! a policy that reads the guard is [`Finding::PolicyNeedsHardenedPool`]:
//! no leak, but a pool that sees nothing.
//!
//! # Objects that read with someone else's rights
//!
//! * a view that is not `security_invoker`, that the role has a privilege
//!   on, and that reads a tenant table directly or through other views of
//!   its kind or materialized views (not through a `security_invoker`
//!   view, which PostgreSQL checks as the current user whoever refers to
//!   it);
//! * a materialized view that reads one, through anything, and that the
//!   role may select: it has no row-level security at all;
//! * a `SECURITY DEFINER` function or procedure the role may execute, or
//!   that a trigger runs on a table it may write (`EXECUTE` is not checked
//!   for triggers), whose owner is a superuser, has `BYPASSRLS`, owns a
//!   tenant table that does not force row-level security (or one that
//!   does, when the body runs DDL or dynamic SQL), or is let through by a
//!   permissive policy of its own that is not bound to the tenant;
//! * a `SECURITY DEFINER` function without `SET search_path` (or with a
//!   schema the role may create in on it) while the role may create in
//!   some schema: SQL run by the application can shadow what it calls;
//! * a rule on a relation the role may write that reads a tenant table
//!   with the relation owner's rights.
//!
//! A view, function or rule owned by a role that is held to the tenant
//! exactly as the pool's role is (the owner of a table that forces
//! row-level security, with bound policies) is not reported. Functions of
//! extensions and, in hardened mode, the guard function are not reported
//! here.
//!
//! # Keys, collations and other side doors
//!
//! Foreign keys between tenant tables must pair the tenant columns; a
//! foreign key from a table without the tenant column into a tenant table,
//! a unique key of a tenant table without the tenant column, `REFERENCES`
//! or `TRIGGER` with the right to create, `UPDATE` on a sequence,
//! reachable large objects, an inheritance parent without the tenant
//! column, a nondeterministic tenant collation, a policy that casts the
//! tenant to `name` (truncating), and a restrictive policy the role does
//! not inherit (`NOINHERIT`) are each reported with their own code. The
//! full list, and what PostgreSQL gives the audit no way to see, is in the
//! repository's `docs/security.md`.
//!
//! # Stored settings
//!
//! A setting stored on the role or database that shapes every session is
//! reported unless this connection was given it in its start-up options
//! (`pg_settings.source = 'client'`), as a `TenantPool` does (see
//! [`TenantPoolBuilder::pin_setting`](crate::TenantPoolBuilder::pin_setting)):
//! then the stored value never reaches a session.
//!
//! # Hardened mode
//!
//! With [`AuditOptions::hardened`], the [guard](crate::guard) is checked
//! too: the function exists, is `SECURITY DEFINER`, plpgsql, without a `SET`
//! clause, with exactly the body [`Guard::function_body`] writes, owned by
//! neither the role (nor a role it belongs to) nor a superuser, and
//! executable by the role; the role has no privilege on the secrets, owns
//! nothing of the guard (schema, table, function, the `hmac` it calls) and
//! may not create in its schema.
//!
//! # What is not checked
//!
//! The audit reads the catalogs; it cannot read function bodies (other than
//! the guard's, and whether a table owner's function runs DDL), nor know
//! which rows a policy that is declared on purpose lets through. Foreign
//! tables and event triggers are not examined. A pool re-runs the audit
//! while it serves (see
//! [`TenantPoolBuilder::audit_interval`](crate::TenantPoolBuilder::audit_interval)).
//!
//! [`RlsPolicy`]: crate::rls::RlsPolicy
//! [`Guard::function_body`]: crate::guard::Guard::function_body
//!
//! ```no_run
//! # async fn check() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::Connection;
//! use tenant_sqlx::{audit, SettingNames};
//!
//! let mut conn = sqlx::PgConnection::connect("postgres://app@localhost/app").await?;
//! let report = audit::run(&mut conn, &SettingNames::default(), "tenant_id").await?;
//! if !report.is_clean() {
//!     // One line per finding, each saying how to fix it.
//!     eprintln!("{report}");
//!     for finding in &report.findings {
//!         eprintln!("{}", finding.code());
//!     }
//! }
//! # Ok(()) }
//! ```

mod catalog;
mod checks;
mod expr;
mod findings;
pub(crate) mod watch;

use std::fmt;

use sqlx::Connection;

pub use findings::{DefinerRights, Finding};

use crate::SettingNames;

/// What the audit found. Empty means the database is configured safely, as
/// far as the audit can tell.
///
/// `Display` writes one finding per line, each with its code and its fix.
///
/// ```
/// use tenant_sqlx::audit::{AuditReport, Finding};
///
/// let report = AuditReport {
///     findings: vec![Finding::RlsNotForced { table: "public.messages".into() }],
///     ..AuditReport::default()
/// };
/// assert!(!report.is_clean());
/// assert_eq!(report.codes(), ["RLS_NOT_FORCED"]);
/// assert!(report.to_string().contains("ALTER TABLE public.messages FORCE ROW LEVEL SECURITY"));
/// assert!(AuditReport::default().is_clean());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Every problem found, in a stable order: roles; tables by name, each
    /// with its policies by name; foreign keys; views and materialized
    /// views; `SECURITY DEFINER` functions; the guard (hardened mode);
    /// stored settings; Citus.
    pub findings: Vec<Finding>,
    /// What makes tenant queries slow without weakening isolation, such as
    /// [`Finding::TenantColumnNotIndexed`]: logged, never refusing
    /// start-up, and not counted by [`is_clean`](Self::is_clean).
    pub performance: Vec<Finding>,
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

/// What the audit checks a database against: the pool's configuration.
///
/// ```
/// use tenant_sqlx::audit::AuditOptions;
/// use tenant_sqlx::SettingNames;
///
/// let options = AuditOptions::new(SettingNames::default(), "tenant_id")
///     .hardened(true)
///     .allow_policy("notes_public_read");
/// assert!(options.is_hardened());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    settings: SettingNames,
    tenant_column: String,
    hardened: bool,
    allowed_policies: Vec<String>,
}

impl AuditOptions {
    /// The checks for a pool writing `settings`, on tables marked by
    /// `tenant_column`.
    pub fn new(settings: SettingNames, tenant_column: impl Into<String>) -> Self {
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
    pub fn setting_names(&self) -> &SettingNames {
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
    settings: &SettingNames,
    tenant_column: &str,
) -> Result<AuditReport, sqlx::Error> {
    run_with(conn, &AuditOptions::new(settings.clone(), tenant_column)).await
}

/// Runs the audit on `conn` with `options`; see [`run`].
///
/// It reads the catalogs inside one transaction, rolled back at the end,
/// with `search_path = pg_catalog` (see the [module docs](self)).
pub async fn run_with(
    conn: &mut sqlx::PgConnection,
    options: &AuditOptions,
) -> Result<AuditReport, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let pinned = checks::pinned_settings(&mut tx).await?;
    sqlx::query("SET LOCAL search_path = pg_catalog")
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    let role: String = sqlx::query_scalar("SELECT format('%I', current_user)")
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    let mut findings = Vec::new();
    let superuser = checks::audit_roles(&mut tx, &mut findings).await?;
    checks::audit_tables(&mut tx, options, &role, superuser, &mut findings).await?;
    checks::audit_maintain(&mut tx, options, &role, &mut findings).await?;
    checks::audit_foreign_keys(&mut tx, options, &mut findings).await?;
    checks::audit_structure(&mut tx, options, &role, &mut findings).await?;
    checks::audit_definers(&mut tx, options, &role, &mut findings).await?;
    if options.is_hardened() {
        checks::audit_guard(&mut tx, options, &role, superuser, &mut findings).await?;
    }
    checks::audit_settings(&mut tx, options.setting_names(), &pinned, &mut findings).await?;
    checks::audit_citus(&mut tx, &role, &mut findings).await?;
    let mut performance = Vec::new();
    checks::audit_indexes(&mut tx, options, &mut performance).await?;
    tx.rollback().await?;
    Ok(AuditReport {
        findings,
        performance,
    })
}
