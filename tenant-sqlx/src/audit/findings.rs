//! [`Finding`]: what the audit reports, each with a stable code, a one-line
//! explanation and the statement that fixes it.

use std::fmt;

use super::PolicyClause;

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
    /// PostgreSQL 17 and later: the role has the `MAINTAIN` privilege on a
    /// tenant table (granted directly, by `GRANT ALL`, or through
    /// `pg_maintain`). It lets the role rewrite the whole table, every
    /// tenant's rows, under an exclusive lock (`VACUUM FULL`, `CLUSTER`,
    /// `REINDEX`): one tenant's request stalls all of them.
    #[error(
        "the role {role} has MAINTAIN on the tenant table {table}, so it may rewrite every tenant's \
         rows under an exclusive lock (VACUUM FULL, CLUSTER, REINDEX): run `REVOKE MAINTAIN ON \
         {table} FROM {role}` (and `REVOKE pg_maintain FROM {role}`)"
    )]
    MaintainAllowed {
        /// The table.
        table: String,
        /// The role the pool connects as.
        role: String,
    },
    /// Performance, reported in [`AuditReport::performance`](crate::audit::AuditReport::performance)
    /// and never refusing start-up: no index of a tenant table starts with
    /// the tenant column, so every policy-filtered query that does not use
    /// another index reads every tenant's rows.
    #[error(
        "no index of the tenant table {table} starts with its tenant column {column}, so queries \
         filtered by the policy alone scan every tenant's rows: run `CREATE INDEX ON {table} \
         ({column})` (or lead the primary key with it)"
    )]
    TenantColumnNotIndexed {
        /// The table.
        table: String,
        /// The tenant column.
        column: String,
    },
    /// The database has the Citus extension, and
    /// `citus.propagate_set_commands` is not `local`: the `SET LOCAL` of
    /// the tenant does not reach the worker nodes, whose policies then see
    /// no tenant and return no rows (they fail closed).
    #[error(
        "the database uses Citus and citus.propagate_set_commands is `{value}`, so the tenant's \
         SET LOCAL does not reach the workers and queries on distributed tables see no rows: run \
         `ALTER ROLE {role} SET citus.propagate_set_commands = 'local'` (or set it in postgresql.conf)"
    )]
    CitusSetNotPropagated {
        /// The setting's current value (`none` by default).
        value: String,
        /// The role the pool connects as.
        role: String,
    },
    /// No policy that applies to the role is bound to the tenant (compares
    /// the tenant column with the tenant setting or the guard function; see
    /// [`PolicyNotTenantBound`](Self::PolicyNotTenantBound)), so the table
    /// is either closed to everyone or open by some other rule.
    #[error(
        "the tenant table {table} has no policy for this role that compares its tenant column with \
         the setting `{setting}`: create one with `tenant_sqlx::rls::RlsPolicy`, i.e. `CREATE POLICY \
         tenant_isolation ON {table} FOR ALL USING (<col> = NULLIF(current_setting('{setting}', \
         true), '')) WITH CHECK (<same>)`"
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
         `WITH CHECK (<col> = NULLIF(current_setting('<tenant setting>', true), ''))`"
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
    /// policies are OR-ed, so this one opens the table to every tenant. The
    /// plainest case of [`PolicyNotTenantBound`](Self::PolicyNotTenantBound),
    /// with the same exceptions.
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
         superuser, run `ALTER ROLE {role} SET track_activities = off` (a setting stored \
         with `ALTER ROLE {role} IN DATABASE … SET` takes precedence: reset it there)"
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

    /// A permissive policy that applies to the role has a `USING` or `WITH
    /// CHECK` expression that is not bound to the tenant: it is not a
    /// conjunction with a term `<tenant column> = <tenant setting>` (in one
    /// of its fail-closed forms) or `= tenant_guard.current_tenant()`.
    /// Permissive policies are combined with OR, so such a policy widens
    /// the tenant policy: `tenant_id = … OR true` lets every tenant read
    /// every row, `… OR current_setting(…) IS NULL` and `tenant_id =
    /// COALESCE(current_setting(…), tenant_id)` every row to a session
    /// without a tenant, `USING (is_public)` other tenants' public rows.
    ///
    /// Not reported for a policy named in
    /// [`AuditOptions::allow_policy`](super::AuditOptions::allow_policy),
    /// nor when a restrictive policy bound to the tenant covers the same
    /// command and clause (restrictive policies are AND-ed to the result).
    #[error(
        "the permissive policy {policy} on {table} has `{clause} ({expression})`, which is not \
         bound to the tenant (no AND-ed term `<tenant column> = <tenant setting>`), and permissive \
         policies are combined with OR, so it lets other tenants' rows through: recreate it with \
         `… AND <tenant column> = NULLIF(current_setting('<tenant setting>', true), '')`, \
         or declare it on purpose with the pool builder's `allow_policy`"
    )]
    PolicyNotTenantBound {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// The clause that is not bound.
        clause: PolicyClause,
        /// The clause's expression, as PostgreSQL prints it.
        expression: String,
    },
    /// Hardened mode: a policy compares the tenant column with the bare
    /// tenant setting instead of `tenant_guard.current_tenant()`. Any SQL
    /// the application runs can set the setting (`set_config(…)`), so a
    /// forged tenant reads that tenant's rows through this policy.
    #[error(
        "in hardened mode the policy {policy} on {table} reads the bare setting `{setting}` in \
         its {clause} clause, which SQL run by the application can set to any tenant: recreate it \
         with `RlsPolicy::hardened(true)`, i.e. `<tenant column> = (SELECT \
         tenant_guard.current_tenant())`"
    )]
    PolicyReadsBareSetting {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// The clause.
        clause: PolicyClause,
        /// The tenant setting.
        setting: String,
    },
    /// A policy reads hardened mode's guard function, but the pool is not
    /// hardened: the function is NULL without the proof a hardened pool
    /// sends, so the pool sees and writes none of the table's rows. Not a
    /// leak, a pool that cannot work.
    #[error(
        "the policy {policy} on {table} reads hardened mode's guard function, which is NULL \
         without the proof only a hardened pool sends, so this pool would see and write no rows: \
         build the pool with `.hardened(GuardSecret::new(secret)?)`"
    )]
    PolicyNeedsHardenedPool {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
    },
    /// A foreign key between two tenant tables does not pair their tenant
    /// columns. The key check bypasses row-level security: a tenant can
    /// insert a row that points at another tenant's hidden row, learns from
    /// success or failure which ids exist, and an `ON DELETE CASCADE` (or
    /// `SET NULL`, or `ON UPDATE`) then changes its rows when the other
    /// tenant deletes or updates its own.
    #[error(
        "the foreign key {constraint} on {table} references {references} without pairing their \
         {column} columns, so a tenant can point at another tenant's row (learning that it \
         exists) and a cascade crosses tenants: run `ALTER TABLE {table} DROP CONSTRAINT \
         {constraint}` and recreate it as `FOREIGN KEY ({column}, …) REFERENCES {references} \
         ({column}, …)` over a unique key of {references} that starts with {column}"
    )]
    ForeignKeyWithoutTenant {
        /// The constraint's name.
        constraint: String,
        /// The referencing table.
        table: String,
        /// The referenced table.
        references: String,
        /// The tenant column.
        column: String,
    },
    /// A view that reads a tenant table (directly, or through other views
    /// without `security_invoker` or materialized views) and that the role
    /// may use runs with its owner's rights: the policies
    /// are applied for the owner, and not at all if the owner is a
    /// superuser, has `BYPASSRLS`, or owns the table without `FORCE`. It is
    /// reported whoever owns it: ownership changes silently (`ALTER VIEW …
    /// OWNER`, a restore as another role), and `security_invoker` costs
    /// nothing.
    #[error(
        "the view {view} reads the tenant table{s} {tables} with the rights of its owner {owner}, \
         not of the role that queries it, so row-level security is checked for {owner} (and \
         skipped if it bypasses it): run `ALTER VIEW {view} SET (security_invoker = true)`",
        s = plural(tables),
        tables = tables.join(", ")
    )]
    ViewNotSecurityInvoker {
        /// The view.
        view: String,
        /// Its owner.
        owner: String,
        /// The tenant tables it reads, directly or through other views.
        tables: Vec<String>,
    },
    /// A materialized view that reads a tenant table, readable by the role.
    /// A materialized view has no row-level security of its own: it holds
    /// the rows its last refresh saw (every tenant's, or the tenant that
    /// refreshed it), and shows them to every role that may select it.
    #[error(
        "the materialized view {view} stores rows of the tenant table{s} {tables} and has no \
         row-level security of its own, so {role} reads whatever its last refresh saw, other \
         tenants' rows included: run `REVOKE ALL ON {view} FROM PUBLIC, {role}` and read the \
         table{s} (or a security_invoker view) instead",
        s = plural(tables),
        tables = tables.join(", ")
    )]
    MaterializedViewReadable {
        /// The materialized view.
        view: String,
        /// The tenant tables it reads, directly or through views.
        tables: Vec<String>,
        /// The role the pool connects as.
        role: String,
    },
    /// A `SECURITY DEFINER` function (or procedure) the role may execute
    /// runs with the rights of an owner that escapes row-level security: a
    /// superuser, a `BYPASSRLS` role, or the owner of a tenant table. The
    /// audit cannot read what the function does, so the owner of a table is
    /// reported with or without `FORCE`: with it, the owner is filtered but
    /// may still turn row-level security off, and a definer function runs
    /// whatever it runs with that right (one dynamic `EXECUTE` is enough).
    #[error(
        "the function {function} is SECURITY DEFINER and {role} may execute it, so it runs with \
         the rights of its owner {owner}, which {rights}, past row-level security: run `REVOKE \
         EXECUTE ON ROUTINE {function} FROM PUBLIC, {role}` (or `ALTER ROUTINE {function} \
         SECURITY INVOKER`)"
    )]
    SecurityDefinerFunction {
        /// The function, with its argument types.
        function: String,
        /// Its owner.
        owner: String,
        /// What the owner may do that the role may not.
        rights: DefinerRights,
        /// The role the pool connects as.
        role: String,
    },
    /// Hardened mode: an object the guard needs does not exist (or the role
    /// cannot see it).
    #[error(
        "hardened mode needs {object}, which does not exist: run \
         `tenant_sqlx::guard::Guard::new().owner(<a NOLOGIN role>).grant_to(<the application \
         role>).sql()` as a superuser"
    )]
    GuardMissing {
        /// What is missing: `FUNCTION tenant_guard.current_tenant()` or
        /// `TABLE tenant_guard.secrets`.
        object: String,
    },
    /// Hardened mode: the guard function is not `SECURITY DEFINER`, so it
    /// reads the secrets with the caller's rights: it fails, or the
    /// application can read the secrets.
    #[error(
        "the guard function {function} is not SECURITY DEFINER, so it reads the secrets with the \
         rights of the caller, who would then be able to read them too: recreate it by running \
         `Guard::sql()` as a superuser"
    )]
    GuardNotSecurityDefiner {
        /// The function.
        function: String,
    },
    /// Hardened mode: the guard function is not written in plpgsql, so it
    /// is not the function tenant-sqlx installs.
    #[error(
        "the guard function {function} is written in {language}, not plpgsql, so it is not the \
         function tenant-sqlx installs: recreate it by running `Guard::sql()` as a superuser"
    )]
    GuardNotPlpgsql {
        /// The function.
        function: String,
        /// Its language.
        language: String,
    },
    /// Hardened mode: the guard function has a `SET` clause. It changes
    /// settings while the proof is checked (a fixed `app.tenant_proof`
    /// makes every forged tenant pass), and even a harmless `SET
    /// search_path` costs about a quarter of the throughput.
    #[error(
        "the guard function {function} has a SET clause ({config}), which changes settings while \
         it checks the proof: run `ALTER FUNCTION {function} RESET ALL`",
        config = config.join(", ")
    )]
    GuardHasSetClause {
        /// The function.
        function: String,
        /// The settings, `name=value`.
        config: Vec<String>,
    },
    /// Hardened mode: the guard function's body is not the one this
    /// version of tenant-sqlx installs
    /// ([`Guard::function_body`](crate::guard::Guard::function_body)): it
    /// may accept a forged tenant, or depend on the search path.
    #[error(
        "the body of the guard function {function} is not the one tenant-sqlx installs, so it may \
         accept a forged tenant or depend on the search path: recreate it by running \
         `Guard::sql()` as a superuser"
    )]
    GuardBodyChanged {
        /// The function.
        function: String,
    },
    /// Hardened mode: the guard's schema, secrets table, function (or the
    /// `hmac` it calls) is owned by the role or a role it belongs to, which
    /// can then read the secrets or replace what checks them.
    #[error(
        "the guard's {object} is owned by {by}, so the application can read the secrets or \
         replace what checks them, and forge any tenant's proof: run `ALTER {object} OWNER TO \
         <a NOLOGIN role of its own>`",
        by = owned_by(owner, role)
    )]
    GuardOwnedByApplicationRole {
        /// The object, with its kind: `SCHEMA tenant_guard`, `TABLE
        /// tenant_guard.secrets`, `FUNCTION tenant_guard.current_tenant()`.
        object: String,
        /// Its owner.
        owner: String,
        /// The role the pool connects as.
        role: String,
    },
    /// Hardened mode: the guard function is owned by a superuser. It only
    /// needs to read the secrets table; a flaw in it (or in what it calls)
    /// would run with every right.
    #[error(
        "the guard function {function} is owned by the superuser {owner}, so a flaw in it runs \
         with every right: run `ALTER FUNCTION {function} OWNER TO <the NOLOGIN role that owns \
         the guard schema and its secrets>`"
    )]
    GuardOwnedBySuperuser {
        /// The function.
        function: String,
        /// Its owner.
        owner: String,
    },
    /// Hardened mode: the role may not execute the guard function, so every
    /// statement on a hardened tenant table fails.
    #[error(
        "the role {role} may not execute the guard function {function}, so every statement on a \
         hardened tenant table fails: run `GRANT EXECUTE ON FUNCTION {function} TO {role}`"
    )]
    GuardNotExecutable {
        /// The function.
        function: String,
        /// The role the pool connects as.
        role: String,
    },
    /// Hardened mode: the role has a privilege on the guard's secrets
    /// table. With `SELECT` it computes any tenant's proof; with `INSERT`
    /// or `UPDATE` it plants a secret of its own.
    #[error(
        "the role {role} has {privileges} on the guard's secrets {table}, so it can read or plant \
         a secret and forge any tenant's proof: run `REVOKE ALL ON {table} FROM PUBLIC, {role}`",
        privileges = privileges.join(", ")
    )]
    GuardSecretsAccessible {
        /// The secrets table.
        table: String,
        /// The role the pool connects as.
        role: String,
        /// The privileges it has, such as `SELECT`.
        privileges: Vec<String>,
    },
    /// Hardened mode: the role may create objects in the guard schema. It
    /// can then plant a table or function there that the guard, or its next
    /// installation (`CREATE TABLE IF NOT EXISTS`), trusts.
    #[error(
        "the role {role} may CREATE in the guard schema {schema}, so it can plant objects that \
         the guard (or its next installation) trusts: run `REVOKE CREATE ON SCHEMA {schema} FROM \
         PUBLIC, {role}`"
    )]
    GuardSchemaWritable {
        /// The schema.
        schema: String,
        /// The role the pool connects as.
        role: String,
    },
    /// A restrictive policy is written `TO` a role of which the pool's
    /// role is a member without inheriting its rights (`NOINHERIT`, or a
    /// grant `WITH INHERIT FALSE`). PostgreSQL applies a policy only to
    /// roles whose rights the current role has, so this one narrows
    /// nothing, and the permissive policies it was meant to narrow apply
    /// alone.
    #[error(
        "the restrictive policy {policy} on {table} is written for {roles}, of which {role} is a \
         member without inheriting its rights, so PostgreSQL does not apply it to {role}: run \
         `ALTER ROLE {role} INHERIT` (on PostgreSQL 16 and later, `GRANT {first} TO {role} WITH \
         INHERIT TRUE`), or recreate the policy `TO PUBLIC`",
        roles = roles.join(", "),
        first = roles.first().map(String::as_str).unwrap_or("<role>")
    )]
    RestrictivePolicyNotInherited {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// The roles the policy is written for that the pool's role does
        /// not inherit.
        roles: Vec<String>,
        /// The role the pool connects as.
        role: String,
    },
    /// A `SECURITY DEFINER` function the role may execute is owned by a
    /// role for which a permissive policy of a tenant table is not bound to
    /// the tenant (say `USING (true)` written `TO` that owner): the
    /// function reads or writes other tenants' rows through it.
    #[error(
        "the function {function} is SECURITY DEFINER and {role} may execute it, so it runs as its \
         owner {owner}, for which the policy {policy} on {table} is not bound to the tenant: run \
         `REVOKE EXECUTE ON ROUTINE {function} FROM PUBLIC, {role}` (or `ALTER ROUTINE {function} \
         SECURITY INVOKER`, or bind {policy} to the tenant)"
    )]
    DefinerOwnerPolicyUnbound {
        /// The function, with its argument types.
        function: String,
        /// Its owner.
        owner: String,
        /// The tenant table.
        table: String,
        /// The policy that lets the owner past the tenant.
        policy: String,
        /// The role the pool connects as.
        role: String,
    },
    /// A `SECURITY DEFINER` function that the role may run (by `EXECUTE`
    /// or through a trigger) has no `SET search_path`, or one that names a
    /// schema the role may create objects in. The function then resolves
    /// names through a path the caller controls: SQL run by the
    /// application puts its own schema first (`SET search_path = evil,
    /// pg_catalog`) and a shadowed `current_setting` or `=` switches the
    /// tenant the function filters by.
    #[error(
        "the function {function} is SECURITY DEFINER and resolves names through {path}, and {role} \
         may CREATE in {schemas}, so SQL run by the application can shadow what the function calls \
         (`current_setting`, `=`) and switch its tenant: run `ALTER ROUTINE {function} SET \
         search_path = pg_catalog, pg_temp` (and qualify the names it uses)",
        path = search_path.as_deref().map_or_else(|| "the caller's search_path".to_owned(), |p| format!("search_path = {p}")),
        schemas = schemas.join(", ")
    )]
    DefinerSearchPathWritable {
        /// The function, with its argument types.
        function: String,
        /// Its `SET search_path`, `None` when it has none.
        search_path: Option<String>,
        /// The schemas the role may create objects in.
        schemas: Vec<String>,
        /// The role the pool connects as.
        role: String,
    },
    /// A `SECURITY DEFINER` trigger function runs on a table the role may
    /// write, with the rights of an owner that escapes the tenant policies.
    /// Triggers fire whatever the `EXECUTE` privilege says, so revoking it
    /// does not help: one tenant's `INSERT` runs code that reads or writes
    /// every tenant's rows.
    #[error(
        "the trigger {trigger} on {table} runs the SECURITY DEFINER function {function} as its \
         owner {owner}, which {rights}, whenever {role} writes {table} (EXECUTE is not checked for \
         triggers): run `ALTER FUNCTION {function} SECURITY INVOKER` (or `ALTER FUNCTION {function} \
         OWNER TO <a role the tenant policies bind>`)"
    )]
    SecurityDefinerTrigger {
        /// The trigger function, with its argument types.
        function: String,
        /// The trigger's name.
        trigger: String,
        /// The table it is on.
        table: String,
        /// The function's owner.
        owner: String,
        /// What the owner may do that the role may not.
        rights: DefinerRights,
        /// The role the pool connects as.
        role: String,
    },
    /// A table without the tenant column, which the role may read or
    /// change, is an inheritance parent of a tenant table. A query on the
    /// parent also reads the children's rows under the *parent's*
    /// policies (none), so every tenant's rows of the child are open.
    #[error(
        "the table {parent} has no {column} column and the tenant table{s} {children} inherit{t} \
         from it, so {role} reads and changes every tenant's rows of {children} through {parent}: \
         run `REVOKE ALL ON {parent} FROM PUBLIC, {role}` (or give {parent} the tenant column and \
         its own policy)",
        s = plural(children),
        t = if children.len() == 1 { "s" } else { "" },
        children = children.join(", ")
    )]
    InheritanceParentWithoutTenant {
        /// The parent table.
        parent: String,
        /// The tenant tables that inherit from it (directly or not).
        children: Vec<String>,
        /// The tenant column.
        column: String,
        /// The role the pool connects as.
        role: String,
    },
    /// Large objects that the role may read or write exist (it owns them,
    /// they are granted to it or to `PUBLIC`, or `lo_compat_privileges`
    /// is on). Large objects have no row-level security, and every tenant
    /// runs as the same role: each tenant reads the others'.
    #[error(
        "{total} large object{s} (such as {objects}) can be read or written by {role}, and large \
         objects have no row-level security, so every tenant reaches them: run `SELECT \
         lo_unlink(oid) FROM pg_largeobject_metadata` for those holding tenant data (or `ALTER \
         LARGE OBJECT <oid> OWNER TO <another role>`), keep `lo_compat_privileges` off, and store \
         the data in a tenant table instead",
        s = if *total == 1 { "" } else { "s" },
        objects = objects.join(", ")
    )]
    LargeObjectsAccessible {
        /// How many.
        total: i64,
        /// The first few, by oid.
        objects: Vec<String>,
        /// The role the pool connects as.
        role: String,
    },
    /// A large-object function was granted to the role (or a role it
    /// inherits from). Large objects have no row-level security; what one
    /// tenant stores there, every tenant reads.
    #[error(
        "{function} was granted to {role} (or a role it inherits from), and large objects have no \
         row-level security, so what one tenant stores there every tenant reads: run `REVOKE \
         EXECUTE ON FUNCTION {function} FROM {role}` (and `FROM PUBLIC`)"
    )]
    LargeObjectFunctionGranted {
        /// The function, with its argument types.
        function: String,
        /// The role the pool connects as.
        role: String,
    },
    /// A rule on a relation the role may write reads a tenant table. Rule
    /// actions run with the rights of the relation's owner, which here
    /// escapes the tenant policies: `CREATE RULE … DO INSTEAD SELECT`
    /// from an owner-only table returns its rows to whoever writes.
    #[error(
        "the rule {rule} on {table} reads the tenant table{s} {tables} with the rights of {owner}, \
         the owner of {table}, which is not bound to the tenant there, and {role} may write \
         {table}: run `DROP RULE {rule} ON {table}` (a trigger or a security_invoker view does \
         the same with the caller's rights)",
        s = plural(tables),
        tables = tables.join(", ")
    )]
    RuleReadsTenantTable {
        /// The rule's name.
        rule: String,
        /// The relation it is on.
        table: String,
        /// The relation's owner.
        owner: String,
        /// The tenant tables it reads.
        tables: Vec<String>,
        /// The role the pool connects as.
        role: String,
    },
    /// The tenant column has a nondeterministic collation: strings that
    /// differ compare equal (`ac-me` and `acme` under an ICU collation
    /// that ignores punctuation, or case under a case-insensitive one), so
    /// one tenant's id selects another tenant's rows.
    #[error(
        "the tenant column {column} of {table} has the nondeterministic collation {collation}, \
         so different tenant ids compare equal and one tenant reads another's rows: run `ALTER \
         TABLE {table} ALTER COLUMN {column} TYPE text COLLATE \"C\"` (keep its type, with a \
         deterministic collation)"
    )]
    TenantColumnNondeterministic {
        /// The table.
        table: String,
        /// The tenant column.
        column: String,
        /// The collation.
        collation: String,
    },
    /// A policy is bound to the tenant through a cast that changes the
    /// value: `::name` truncates to 63 bytes (ids may be 64), `::"char"`
    /// and `::character` to one character, `::citext` ignores case. Two
    /// tenants whose ids agree after the cast see each other's rows.
    #[error(
        "the policy {policy} on {table} casts the tenant to {cast} in its {clause} clause, which \
         changes the value (truncates it or ignores case), so two tenants whose ids agree after \
         the cast see each other's rows: recreate it with `<tenant column> = \
         NULLIF(current_setting('<tenant setting>', true), '')` (cast only to the column's own type)"
    )]
    PolicyLossyCast {
        /// The table.
        table: String,
        /// The policy's name (quoted as an identifier where needed).
        policy: String,
        /// The clause.
        clause: PolicyClause,
        /// The type cast to.
        cast: String,
    },
    /// A unique index (a primary key, a `UNIQUE` constraint) of a tenant
    /// table does not include the tenant column, and the role may write
    /// one of its columns. Uniqueness is checked across every tenant's
    /// rows, past row-level security: a tenant learns from a
    /// unique-violation which values other tenants hold, waits on their
    /// uncommitted rows, and can claim values (the next ids) before them.
    #[error(
        "the unique index {index} of {table} (`{definition}`) does not include {column}, so a \
         tenant learns from a unique violation which values other tenants hold and can claim them \
         first: recreate it with {column} as its first column (`PRIMARY KEY ({column}, …)`, \
         `UNIQUE ({column}, …)`), or revoke INSERT and UPDATE on its columns"
    )]
    UniqueKeyWithoutTenant {
        /// The index (of the constraint).
        index: String,
        /// The table.
        table: String,
        /// The index definition.
        definition: String,
        /// The tenant column.
        column: String,
    },
    /// A table without the tenant column, which the role may use, has a
    /// foreign key into a tenant table. The key check bypasses row-level
    /// security: inserting a row that points at an id tells whether another
    /// tenant's row has it, and the referencing rows are shared by every
    /// tenant.
    #[error(
        "the foreign key {constraint} on {table}, which has no tenant column, references the tenant \
         table {references}, so a tenant learns from the key check which of other tenants' rows \
         exist: run `ALTER TABLE {table} DROP CONSTRAINT {constraint}` (or make {table} a tenant \
         table whose key pairs the tenant columns)"
    )]
    ForeignKeyFromNonTenantTable {
        /// The constraint's name.
        constraint: String,
        /// The referencing table.
        table: String,
        /// The referenced tenant table.
        references: String,
    },
    /// The role has `REFERENCES` on a tenant table and may create or owns
    /// a table: it can add a foreign key into the tenant table, whose check
    /// bypasses row-level security (which ids exist in other tenants) and
    /// whose `KEY SHARE` locks block other tenants' deletes.
    #[error(
        "the role {role} has REFERENCES on the tenant table {table} and may create tables, so a \
         foreign key of its own tells which of other tenants' rows exist and locks them: run \
         `REVOKE REFERENCES ON {table} FROM PUBLIC, {role}`"
    )]
    ReferencesAllowed {
        /// The table.
        table: String,
        /// The role the pool connects as.
        role: String,
    },
    /// The role has `TRIGGER` on a tenant table and may create functions:
    /// a trigger of its own runs inside every other tenant's writes, with
    /// their tenant set, and can copy their rows anywhere.
    #[error(
        "the role {role} has TRIGGER on the tenant table {table} and may create functions, so a \
         trigger of its own runs inside other tenants' writes and sees their rows: run `REVOKE \
         TRIGGER ON {table} FROM PUBLIC, {role}`"
    )]
    TriggerAllowed {
        /// The table.
        table: String,
        /// The role the pool connects as.
        role: String,
    },
    /// The role has `UPDATE` on a sequence (or owns it): `setval` moves a
    /// sequence every tenant draws from, so one tenant makes the others'
    /// inserts collide or fail.
    #[error(
        "the role {role} may setval the sequence {sequence}, which every tenant shares, so one \
         tenant makes the others' inserts collide or fail: run `REVOKE UPDATE ON SEQUENCE \
         {sequence} FROM PUBLIC, {role}` (USAGE is enough for nextval)"
    )]
    SequenceUpdateAllowed {
        /// The sequence.
        sequence: String,
        /// The role the pool connects as.
        role: String,
    },
}

/// Why a [`Finding::SecurityDefinerFunction`]'s owner escapes row-level
/// security.
///
/// ```
/// use tenant_sqlx::audit::DefinerRights;
///
/// let rights = DefinerRights::OwnsTenantTable { table: "public.notes".into() };
/// assert_eq!(rights.to_string(), "owns the tenant table public.notes (and may turn its row-level security off)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DefinerRights {
    /// The owner is a superuser.
    Superuser,
    /// The owner has `BYPASSRLS`.
    BypassRls,
    /// The owner owns a tenant table (or belongs to the role that does):
    /// the first one by name.
    OwnsTenantTable {
        /// The table.
        table: String,
    },
    /// Row-level security is disabled on a tenant table the owner may
    /// use.
    RlsDisabledOn {
        /// The table.
        table: String,
    },
    /// A permissive policy of a tenant table that applies to the owner is
    /// not bound to the tenant.
    PolicyNotTenantBound {
        /// The table.
        table: String,
        /// The policy.
        policy: String,
    },
}

impl fmt::Display for DefinerRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefinerRights::Superuser => f.write_str("is a superuser"),
            DefinerRights::BypassRls => f.write_str("has BYPASSRLS"),
            DefinerRights::OwnsTenantTable { table } => write!(
                f,
                "owns the tenant table {table} (and may turn its row-level security off)"
            ),
            DefinerRights::RlsDisabledOn { table } => write!(
                f,
                "may use the tenant table {table}, whose row-level security is disabled"
            ),
            DefinerRights::PolicyNotTenantBound { table, policy } => write!(
                f,
                "is let through by the policy {policy} on {table}, which is not bound to the tenant"
            ),
        }
    }
}

fn plural(items: &[String]) -> &'static str {
    if items.len() == 1 {
        ""
    } else {
        "s"
    }
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
            Finding::MaintainAllowed { .. } => "MAINTAIN_ALLOWED",
            Finding::TenantColumnNotIndexed { .. } => "TENANT_COLUMN_NOT_INDEXED",
            Finding::CitusSetNotPropagated { .. } => "CITUS_SET_NOT_PROPAGATED",
            Finding::NoTenantPolicy { .. } => "TENANT_POLICY_MISSING",
            Finding::WritePolicyWithoutCheck { .. } => "WRITE_POLICY_WITHOUT_CHECK",
            Finding::PermissiveAlwaysTrue { .. } => "PERMISSIVE_POLICY_TRUE",
            Finding::StoredDefault { .. } => "SETTING_STORED_DEFAULT",
            Finding::PresetInSession { .. } => "SETTING_PRESET_IN_SESSION",
            Finding::StoredSessionSetting { .. } => "SETTING_STORED_FOR_SESSIONS",
            Finding::QueryTextVisible { .. } => "QUERY_TEXT_VISIBLE",
            Finding::UtilityStatementsTracked => "UTILITY_STATEMENTS_TRACKED",
            Finding::PolicyNotTenantBound { .. } => "POLICY_NOT_TENANT_BOUND",
            Finding::PolicyReadsBareSetting { .. } => "POLICY_READS_BARE_SETTING",
            Finding::PolicyNeedsHardenedPool { .. } => "POLICY_NEEDS_HARDENED_POOL",
            Finding::ForeignKeyWithoutTenant { .. } => "FOREIGN_KEY_WITHOUT_TENANT",
            Finding::ViewNotSecurityInvoker { .. } => "VIEW_NOT_SECURITY_INVOKER",
            Finding::MaterializedViewReadable { .. } => "MATERIALIZED_VIEW_READABLE",
            Finding::SecurityDefinerFunction { .. } => "SECURITY_DEFINER_FUNCTION",
            Finding::GuardMissing { .. } => "GUARD_MISSING",
            Finding::GuardNotSecurityDefiner { .. } => "GUARD_NOT_SECURITY_DEFINER",
            Finding::GuardNotPlpgsql { .. } => "GUARD_NOT_PLPGSQL",
            Finding::GuardHasSetClause { .. } => "GUARD_HAS_SET_CLAUSE",
            Finding::GuardBodyChanged { .. } => "GUARD_BODY_CHANGED",
            Finding::GuardOwnedByApplicationRole { .. } => "GUARD_OWNED_BY_APP_ROLE",
            Finding::GuardOwnedBySuperuser { .. } => "GUARD_OWNED_BY_SUPERUSER",
            Finding::GuardNotExecutable { .. } => "GUARD_NOT_EXECUTABLE",
            Finding::GuardSecretsAccessible { .. } => "GUARD_SECRETS_ACCESSIBLE",
            Finding::GuardSchemaWritable { .. } => "GUARD_SCHEMA_WRITABLE",
            Finding::RestrictivePolicyNotInherited { .. } => "RESTRICTIVE_POLICY_NOT_INHERITED",
            Finding::DefinerOwnerPolicyUnbound { .. } => "SECURITY_DEFINER_OWNER_UNBOUND",
            Finding::DefinerSearchPathWritable { .. } => "SECURITY_DEFINER_SEARCH_PATH",
            Finding::SecurityDefinerTrigger { .. } => "SECURITY_DEFINER_TRIGGER",
            Finding::InheritanceParentWithoutTenant { .. } => "INHERITANCE_PARENT_WITHOUT_TENANT",
            Finding::LargeObjectsAccessible { .. } => "LARGE_OBJECTS_ACCESSIBLE",
            Finding::LargeObjectFunctionGranted { .. } => "LARGE_OBJECT_FUNCTION_GRANTED",
            Finding::RuleReadsTenantTable { .. } => "RULE_READS_TENANT_TABLE",
            Finding::TenantColumnNondeterministic { .. } => "TENANT_COLUMN_NONDETERMINISTIC",
            Finding::PolicyLossyCast { .. } => "POLICY_LOSSY_CAST",
            Finding::UniqueKeyWithoutTenant { .. } => "UNIQUE_KEY_WITHOUT_TENANT",
            Finding::ForeignKeyFromNonTenantTable { .. } => "FOREIGN_KEY_FROM_NON_TENANT_TABLE",
            Finding::ReferencesAllowed { .. } => "REFERENCES_ALLOWED",
            Finding::TriggerAllowed { .. } => "TRIGGER_ALLOWED",
            Finding::SequenceUpdateAllowed { .. } => "SEQUENCE_UPDATE_ALLOWED",
        }
    }

    /// The table the finding is about, for findings about one table.
    pub fn table(&self) -> Option<&str> {
        match self {
            Finding::RlsNotEnabled { table }
            | Finding::RlsNotForced { table }
            | Finding::TableOwnedByApplicationRole { table, .. }
            | Finding::TruncateAllowed { table, .. }
            | Finding::MaintainAllowed { table, .. }
            | Finding::TenantColumnNotIndexed { table, .. }
            | Finding::NoTenantPolicy { table, .. }
            | Finding::WritePolicyWithoutCheck { table, .. }
            | Finding::PermissiveAlwaysTrue { table, .. }
            | Finding::PolicyNotTenantBound { table, .. }
            | Finding::PolicyReadsBareSetting { table, .. }
            | Finding::PolicyNeedsHardenedPool { table, .. }
            | Finding::ForeignKeyWithoutTenant { table, .. }
            | Finding::RestrictivePolicyNotInherited { table, .. }
            | Finding::DefinerOwnerPolicyUnbound { table, .. }
            | Finding::SecurityDefinerTrigger { table, .. }
            | Finding::RuleReadsTenantTable { table, .. }
            | Finding::TenantColumnNondeterministic { table, .. }
            | Finding::PolicyLossyCast { table, .. }
            | Finding::UniqueKeyWithoutTenant { table, .. }
            | Finding::ForeignKeyFromNonTenantTable { table, .. }
            | Finding::ReferencesAllowed { table, .. }
            | Finding::TriggerAllowed { table, .. } => Some(table),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditReport;

    fn one_of_each() -> Vec<Finding> {
        let table = || "public.notes".to_owned();
        let guard = || "tenant_guard.current_tenant()".to_owned();
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
            Finding::MaintainAllowed {
                table: table(),
                role: "app".into(),
            },
            Finding::TenantColumnNotIndexed {
                table: table(),
                column: "tenant_id".into(),
            },
            Finding::CitusSetNotPropagated {
                value: "none".into(),
                role: "app".into(),
            },
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
            Finding::PolicyNotTenantBound {
                table: table(),
                policy: "p".into(),
                clause: PolicyClause::Using,
                expression: "is_public".into(),
            },
            Finding::PolicyReadsBareSetting {
                table: table(),
                policy: "p".into(),
                clause: PolicyClause::WithCheck,
                setting: "app.current_tenant".into(),
            },
            Finding::PolicyNeedsHardenedPool {
                table: table(),
                policy: "p".into(),
            },
            Finding::ForeignKeyWithoutTenant {
                constraint: "notes_parent_fkey".into(),
                table: table(),
                references: "public.parents".into(),
                column: "tenant_id".into(),
            },
            Finding::ViewNotSecurityInvoker {
                view: "public.all_notes".into(),
                owner: "postgres".into(),
                tables: vec![table()],
            },
            Finding::MaterializedViewReadable {
                view: "public.note_stats".into(),
                tables: vec![table(), "public.parents".into()],
                role: "app".into(),
            },
            Finding::SecurityDefinerFunction {
                function: "public.note_count()".into(),
                owner: "postgres".into(),
                rights: DefinerRights::Superuser,
                role: "app".into(),
            },
            Finding::GuardMissing {
                object: "FUNCTION tenant_guard.current_tenant()".into(),
            },
            Finding::GuardNotSecurityDefiner { function: guard() },
            Finding::GuardNotPlpgsql {
                function: guard(),
                language: "sql".into(),
            },
            Finding::GuardHasSetClause {
                function: guard(),
                config: vec!["search_path=pg_catalog".into()],
            },
            Finding::GuardBodyChanged { function: guard() },
            Finding::GuardOwnedByApplicationRole {
                object: format!("FUNCTION {}", guard()),
                owner: "app".into(),
                role: "app".into(),
            },
            Finding::GuardOwnedBySuperuser {
                function: guard(),
                owner: "postgres".into(),
            },
            Finding::GuardNotExecutable {
                function: guard(),
                role: "app".into(),
            },
            Finding::GuardSecretsAccessible {
                table: "tenant_guard.secrets".into(),
                role: "app".into(),
                privileges: vec!["SELECT".into()],
            },
            Finding::GuardSchemaWritable {
                schema: "tenant_guard".into(),
                role: "app".into(),
            },
            Finding::RestrictivePolicyNotInherited {
                table: table(),
                policy: "p".into(),
                roles: vec!["readers".into()],
                role: "app".into(),
            },
            Finding::DefinerOwnerPolicyUnbound {
                function: "public.f()".into(),
                owner: "reporter".into(),
                table: table(),
                policy: "p".into(),
                role: "app".into(),
            },
            Finding::DefinerSearchPathWritable {
                function: "public.f()".into(),
                search_path: None,
                schemas: vec!["public".into()],
                role: "app".into(),
            },
            Finding::SecurityDefinerTrigger {
                function: "public.f()".into(),
                trigger: "t".into(),
                table: table(),
                owner: "postgres".into(),
                rights: DefinerRights::Superuser,
                role: "app".into(),
            },
            Finding::InheritanceParentWithoutTenant {
                parent: "public.base".into(),
                children: vec![table()],
                column: "tenant_id".into(),
                role: "app".into(),
            },
            Finding::LargeObjectsAccessible {
                total: 1,
                objects: vec!["16400".into()],
                role: "app".into(),
            },
            Finding::LargeObjectFunctionGranted {
                function: "lo_get(oid)".into(),
                role: "app".into(),
            },
            Finding::RuleReadsTenantTable {
                rule: "r".into(),
                table: table(),
                owner: "o".into(),
                tables: vec!["public.secrets".into()],
                role: "app".into(),
            },
            Finding::TenantColumnNondeterministic {
                table: table(),
                column: "tenant_id".into(),
                collation: "public.ci".into(),
            },
            Finding::PolicyLossyCast {
                table: table(),
                policy: "p".into(),
                clause: PolicyClause::Using,
                cast: "name".into(),
            },
            Finding::UniqueKeyWithoutTenant {
                index: "public.notes_slug_key".into(),
                table: table(),
                definition: "CREATE UNIQUE INDEX notes_slug_key ON public.notes USING btree (slug)"
                    .into(),
                column: "tenant_id".into(),
            },
            Finding::ForeignKeyFromNonTenantTable {
                constraint: "likes_note_fkey".into(),
                table: table(),
                references: "public.parents".into(),
            },
            Finding::ReferencesAllowed {
                table: table(),
                role: "app".into(),
            },
            Finding::TriggerAllowed {
                table: table(),
                role: "app".into(),
            },
            Finding::SequenceUpdateAllowed {
                sequence: "public.notes_id_seq".into(),
                role: "app".into(),
            },
        ]
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
                    || message.contains(": as a superuser, run `")
                    || message.contains(": build the pool with `"),
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
            ..AuditReport::default()
        };
        let text = report.to_string();
        let n = report.findings.len();
        assert!(text.starts_with(&format!("the row-level security audit found {n} problems:")));
        assert_eq!(text.lines().count(), n + 1);
        assert!(text.contains("\n- [ROLE_IS_SUPERUSER] the role app is a superuser"));
    }

    #[test]
    fn messages_are_one_line_and_name_their_subject() {
        for finding in one_of_each() {
            let message = finding.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("  "), "{message}");
            if let Some(table) = finding.table() {
                assert!(message.contains(table), "{message}");
            }
        }
        let bound = Finding::PolicyNotTenantBound {
            table: "public.notes".into(),
            policy: "p".into(),
            clause: PolicyClause::Using,
            expression: "is_public".into(),
        };
        assert!(bound.to_string().contains("`USING (is_public)`"));
        let view = Finding::ViewNotSecurityInvoker {
            view: "public.v".into(),
            owner: "o".into(),
            tables: vec!["public.a".into(), "public.b".into()],
        };
        assert!(view
            .to_string()
            .contains("reads the tenant tables public.a, public.b with the rights of its owner o"));
    }
}
