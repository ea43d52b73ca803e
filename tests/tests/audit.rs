//! The start-up audit against real misconfigurations.
//!
//! Every test gets its own database from the harness and starts from the
//! correct setup (a tenant table made with `RlsPolicy`, seeded with one row
//! for each of two tenants), then breaks exactly one thing as the superuser
//! or the owner, and checks that the audit — run as the application role —
//! reports exactly that, and that the misconfiguration is real (it lets rows
//! or writes through that the correct setup does not). Roles are global to
//! the cluster, so a test that needs a misconfigured role creates its own,
//! named after its database. The last tests check that `TenantPool` refuses
//! to start on a finding unless told to allow it.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::audit::{self, AuditReport, Finding, PolicyClause};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::{SettingNames, TenantPool};
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE, EXTERNAL_PASSWORD};

const COLUMN: &str = "tenant_id";
const TABLE: &str = "public.notes";

async fn fresh_database() -> TestDatabase {
    TestCluster::shared()
        .await
        .expect("test cluster")
        .create_database()
        .await
        .expect("test database")
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// Connects to `db` as `role` (made by [`login_role`]).
async fn connect_as(db: &TestDatabase, role: &str) -> PgConnection {
    let options: PgConnectOptions = db.app_url().parse().expect("app url");
    PgConnection::connect_with(&options.username(role).password(EXTERNAL_PASSWORD))
        .await
        .expect("connect as role")
}

async fn exec(url: &str, sql: &str) {
    let mut conn = connect(url).await;
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

/// The correct setup: `public.notes` made a tenant table by the helper, as
/// the owner, with one row for `acme` and one for `globex`.
async fn correct_setup(db: &TestDatabase) {
    let script = format!(
        "CREATE TABLE {TABLE} (tenant_id text NOT NULL, body text NOT NULL);\n{policy}\
         BEGIN;\n\
         SET LOCAL app.current_tenant = 'acme';\n\
         INSERT INTO {TABLE} VALUES ('acme', 'a note of acme');\n\
         SET LOCAL app.current_tenant = 'globex';\n\
         INSERT INTO {TABLE} VALUES ('globex', 'a note of globex');\n\
         COMMIT;",
        policy = RlsPolicy::new(TABLE, COLUMN).grant_to(APP_ROLE).sql()
    );
    exec(db.owner_url(), &script).await;
}

async fn audit_conn(conn: &mut PgConnection) -> AuditReport {
    audit::run(conn, &SettingNames::default(), COLUMN)
        .await
        .expect("audit")
}

async fn audit_app(db: &TestDatabase) -> AuditReport {
    audit_conn(&mut connect(db.app_url()).await).await
}

/// Rows of `public.notes` a connection sees with no tenant set.
async fn rows_without_tenant(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.notes")
        .fetch_one(conn)
        .await
        .expect("count")
}

/// Rows of `public.notes` a connection sees inside `tenant`'s transaction.
async fn rows_as_tenant(conn: &mut PgConnection, tenant: &str) -> Vec<String> {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("set tenant");
    let rows = sqlx::query_scalar("SELECT tenant_id FROM public.notes ORDER BY tenant_id")
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    tx.rollback().await.expect("rollback");
    rows
}

/// A login role named after the database (roles are cluster-wide), with
/// `attributes`, allowed to use `public.notes`, and (as the audit asks)
/// `track_activities = off`.
async fn login_role(db: &TestDatabase, suffix: &str, attributes: &str) -> String {
    let role = format!("{}_{suffix}", db.name());
    exec(
        db.admin_url(),
        &format!(
            "CREATE ROLE \"{role}\" LOGIN {attributes} PASSWORD '{EXTERNAL_PASSWORD}';\n\
             ALTER ROLE \"{role}\" SET track_activities = off;\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO \"{role}\";"
        ),
    )
    .await;
    role
}

fn notes() -> String {
    TABLE.to_owned()
}

#[tokio::test]
async fn correct_setup_has_no_findings_and_isolates() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    // Tables the audit must look at without complaint: a second tenant table
    // with awkward names in its own schema, and a table with no tenant
    // column, which is not a tenant table.
    let odd = RlsPolicy::new(
        tenant_sqlx::rls::TableName::qualified("Odd Schema", "Odd \"Notes\""),
        COLUMN,
    )
    .grant_to(APP_ROLE);
    exec(
        db.owner_url(),
        &format!(
            "CREATE SCHEMA \"Odd Schema\";\n\
             GRANT USAGE ON SCHEMA \"Odd Schema\" TO {APP_ROLE};\n\
             CREATE TABLE {} (tenant_id text NOT NULL);\n{}\
             CREATE TABLE public.countries (code text PRIMARY KEY);\n\
             GRANT SELECT ON public.countries TO {APP_ROLE};",
            odd.table(),
            odd.sql()
        ),
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(report.findings, vec![], "{report}");
    assert!(report.is_clean());

    let mut app = connect(db.app_url()).await;
    assert_eq!(rows_without_tenant(&mut app).await, 0);
    assert_eq!(rows_as_tenant(&mut app, "acme").await, ["acme"]);
}

#[tokio::test]
async fn superuser_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let role = login_role(&db, "super", "SUPERUSER").await;
    let mut conn = connect_as(&db, &role).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::Superuser { role: role.clone() }],
        "{report}"
    );
    // Real: policies do not apply to it.
    assert_eq!(rows_without_tenant(&mut conn).await, 2);
}

#[tokio::test]
async fn bypassrls_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let role = login_role(&db, "bypass", "NOSUPERUSER BYPASSRLS").await;
    let mut conn = connect_as(&db, &role).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::BypassRls { role: role.clone() }],
        "{report}"
    );
    assert_eq!(rows_without_tenant(&mut conn).await, 2);
}

#[tokio::test]
async fn member_of_a_bypassrls_role_through_another_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let app = login_role(&db, "member", "NOSUPERUSER NOBYPASSRLS").await;
    let bypass = format!("{}_bypass_group", db.name());
    let middle = format!("{}_middle_group", db.name());
    exec(
        db.admin_url(),
        &format!(
            "CREATE ROLE \"{bypass}\" NOLOGIN BYPASSRLS;\n\
             GRANT SELECT ON {TABLE} TO \"{bypass}\";\n\
             CREATE ROLE \"{middle}\" NOLOGIN;\n\
             GRANT \"{bypass}\" TO \"{middle}\";\n\
             GRANT \"{middle}\" TO \"{app}\";"
        ),
    )
    .await;
    let mut conn = connect_as(&db, &app).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::MemberOfPrivilegedRole {
            role: app.clone(),
            member_of: bypass.clone(),
            superuser: false,
            bypass_rls: true,
        }],
        "{report}"
    );
    // Real: the role itself is filtered, one SET ROLE away it is not.
    assert_eq!(rows_without_tenant(&mut conn).await, 0);
    sqlx::raw_sql(&format!("SET ROLE \"{bypass}\""))
        .execute(&mut conn)
        .await
        .expect("set role");
    assert_eq!(rows_without_tenant(&mut conn).await, 2);
}

#[tokio::test]
async fn member_of_a_superuser_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let app = login_role(&db, "member", "NOSUPERUSER NOBYPASSRLS").await;
    let admins = format!("{}_admins", db.name());
    exec(
        db.admin_url(),
        &format!("CREATE ROLE \"{admins}\" NOLOGIN SUPERUSER;\nGRANT \"{admins}\" TO \"{app}\";"),
    )
    .await;
    let mut conn = connect_as(&db, &app).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::MemberOfPrivilegedRole {
            role: app.clone(),
            member_of: admins.clone(),
            superuser: true,
            bypass_rls: false,
        }],
        "{report}"
    );
    sqlx::raw_sql(&format!("SET ROLE \"{admins}\""))
        .execute(&mut conn)
        .await
        .expect("set role");
    assert_eq!(rows_without_tenant(&mut conn).await, 2);
}

#[tokio::test]
async fn missing_enable() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::RlsNotEnabled { table: notes() }],
        "{report}"
    );
    assert!(report.to_string().contains(
        "[RLS_NOT_ENABLED] the tenant table public.notes has row-level security disabled"
    ));
    assert_eq!(
        rows_without_tenant(&mut connect(db.app_url()).await).await,
        2
    );
}

#[tokio::test]
async fn missing_force() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::RlsNotForced { table: notes() }],
        "{report}"
    );
    // Real: the owner now reads every tenant's rows.
    assert_eq!(
        rows_without_tenant(&mut connect(db.owner_url()).await).await,
        2
    );
}

#[tokio::test]
async fn missing_policy() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "DROP POLICY tenant_isolation ON public.notes",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::NoTenantPolicy {
            table: notes(),
            setting: "app.current_tenant".into(),
        }],
        "{report}"
    );
    // Real: with no policy, even a tenant's own rows are invisible.
    assert!(rows_as_tenant(&mut connect(db.app_url()).await, "acme")
        .await
        .is_empty());
}

#[tokio::test]
async fn policy_that_ignores_the_tenant_setting() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "DROP POLICY tenant_isolation ON public.notes;\n\
         CREATE POLICY by_owner ON public.notes FOR SELECT USING (body <> '');",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [
            Finding::PolicyNotTenantBound {
                table: notes(),
                policy: "by_owner".into(),
                clause: PolicyClause::Using,
                expression: "(body <> ''::text)".into(),
            },
            Finding::NoTenantPolicy {
                table: notes(),
                setting: "app.current_tenant".into(),
            },
        ],
        "{report}"
    );
    assert_eq!(
        rows_without_tenant(&mut connect(db.app_url()).await).await,
        2
    );
}

#[tokio::test]
async fn write_policy_without_with_check() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "DROP POLICY tenant_isolation ON public.notes;\n\
         CREATE POLICY reads ON public.notes FOR ALL \
           USING (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')));\n\
         CREATE POLICY inserts ON public.notes FOR INSERT;",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [
            Finding::WritePolicyWithoutCheck {
                table: notes(),
                policy: "inserts".into(),
                command: "INSERT".into(),
            },
            Finding::WritePolicyWithoutCheck {
                table: notes(),
                policy: "reads".into(),
                command: "ALL".into(),
            },
        ],
        "{report}"
    );
    assert_eq!(
        report.codes(),
        ["WRITE_POLICY_WITHOUT_CHECK", "WRITE_POLICY_WITHOUT_CHECK"]
    );
}

#[tokio::test]
async fn permissive_using_true() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "CREATE POLICY debug_read ON public.notes FOR SELECT USING (true);\n\
         CREATE POLICY \"Debug write\" ON public.notes FOR INSERT WITH CHECK (true);\n\
         -- Restrictive policies only narrow access: not a finding.\n\
         CREATE POLICY narrowing ON public.notes AS RESTRICTIVE FOR SELECT USING (true);",
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [
            Finding::PermissiveAlwaysTrue {
                table: notes(),
                policy: "\"Debug write\"".into(),
                clause: PolicyClause::WithCheck,
            },
            Finding::PermissiveAlwaysTrue {
                table: notes(),
                policy: "debug_read".into(),
                clause: PolicyClause::Using,
            },
        ],
        "{report}"
    );
    // Real: acme now reads globex's row too.
    assert_eq!(
        rows_as_tenant(&mut connect(db.app_url()).await, "acme").await,
        ["acme", "globex"]
    );
}

#[tokio::test]
async fn table_owned_by_the_application_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.admin_url(),
        &format!("ALTER TABLE public.notes OWNER TO {APP_ROLE}"),
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::TableOwnedByApplicationRole {
            table: notes(),
            owner: APP_ROLE.into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    // Real: FORCE still filters the owner, but the owner can turn it off.
    let mut app = connect(db.app_url()).await;
    assert_eq!(rows_without_tenant(&mut app).await, 0);
    sqlx::raw_sql("ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY")
        .execute(&mut app)
        .await
        .expect("owner alters the table");
    assert_eq!(rows_without_tenant(&mut app).await, 2);
}

#[tokio::test]
async fn table_owned_by_a_role_the_application_role_belongs_to() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let app = login_role(&db, "app", "NOSUPERUSER NOBYPASSRLS").await;
    let owners = format!("{}_owners", db.name());
    exec(
        db.admin_url(),
        &format!(
            "CREATE ROLE \"{owners}\" NOLOGIN;\n\
             GRANT \"{owners}\" TO \"{app}\";\n\
             ALTER TABLE public.notes OWNER TO \"{owners}\";"
        ),
    )
    .await;
    let mut conn = connect_as(&db, &app).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::TableOwnedByApplicationRole {
            table: notes(),
            owner: owners.clone(),
            role: app.clone(),
        }],
        "{report}"
    );
    sqlx::raw_sql("ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY")
        .execute(&mut conn)
        .await
        .expect("a member of the owning role alters the table");
    assert_eq!(rows_without_tenant(&mut conn).await, 2);
}

#[tokio::test]
async fn truncate_granted() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        &format!("GRANT TRUNCATE ON public.notes TO {APP_ROLE}"),
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::TruncateAllowed {
            table: notes(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    // Real: inside acme's transaction, TRUNCATE empties globex's rows too.
    let mut app = connect(db.app_url()).await;
    let mut tx = app.begin().await.expect("begin");
    sqlx::raw_sql("SET LOCAL app.current_tenant = 'acme'; TRUNCATE public.notes")
        .execute(&mut *tx)
        .await
        .expect("truncate");
    tx.commit().await.expect("commit");
    let mut owner = connect(db.owner_url()).await;
    assert!(rows_as_tenant(&mut owner, "globex").await.is_empty());
}

#[tokio::test]
async fn stored_default_on_the_role() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let app = login_role(&db, "app", "NOSUPERUSER NOBYPASSRLS").await;
    exec(
        db.admin_url(),
        &format!(
            "ALTER ROLE \"{app}\" SET app.current_tenant = 'acme';\n\
             ALTER ROLE \"{app}\" IN DATABASE \"{db}\" SET app.current_agent = 'agent-7';",
            db = db.name()
        ),
    )
    .await;
    let mut conn = connect_as(&db, &app).await;

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [
            Finding::StoredDefault {
                setting: "app.current_tenant".into(),
                role: Some(app.clone()),
                database: None,
                value: "acme".into(),
            },
            Finding::StoredDefault {
                setting: "app.current_agent".into(),
                role: Some(app.clone()),
                database: Some(db.name().into()),
                value: "agent-7".into(),
            },
        ],
        "{report}"
    );
    assert!(report
        .to_string()
        .contains(&format!("ALTER ROLE {app} RESET app.current_tenant")));
    // Real: without choosing a tenant, the connection reads acme's row.
    assert_eq!(rows_without_tenant(&mut conn).await, 1);
}

#[tokio::test]
async fn stored_default_on_the_database() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.admin_url(),
        &format!(
            "ALTER DATABASE \"{}\" SET app.current_tenant = 'globex'",
            db.name()
        ),
    )
    .await;

    let report = audit_app(&db).await;
    assert_eq!(
        report.findings,
        [Finding::StoredDefault {
            setting: "app.current_tenant".into(),
            role: None,
            database: Some(db.name().into()),
            value: "globex".into(),
        }],
        "{report}"
    );
    assert_eq!(
        rows_without_tenant(&mut connect(db.app_url()).await).await,
        1
    );
}

#[tokio::test]
async fn setting_preset_by_connection_options() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    let options: PgConnectOptions = db.app_url().parse().expect("app url");
    let mut conn = PgConnection::connect_with(&options.options([("app.current_tenant", "acme")]))
        .await
        .expect("connect");

    let report = audit_conn(&mut conn).await;
    assert_eq!(
        report.findings,
        [Finding::PresetInSession {
            setting: "app.current_tenant".into(),
            value: "acme".into(),
        }],
        "{report}"
    );
    assert_eq!(rows_without_tenant(&mut conn).await, 1);
}

#[tokio::test]
async fn custom_setting_names_are_what_the_audit_looks_for() {
    let db = fresh_database().await;
    let settings = SettingNames::default().rename_tenant("myapp.tenant");
    exec(
        db.owner_url(),
        &format!(
            "CREATE TABLE {TABLE} (tenant_id text NOT NULL, body text NOT NULL);\n{}",
            RlsPolicy::new(TABLE, COLUMN)
                .setting_names(&settings)
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;
    let mut app = connect(db.app_url()).await;

    let matching = audit::run(&mut app, &settings, COLUMN)
        .await
        .expect("audit");
    assert_eq!(matching.findings, vec![], "{matching}");
    // Read with the default setting, the helper's policy is bound to
    // nothing the pool sets.
    let default = audit_conn(&mut app).await;
    assert_eq!(
        default.codes(),
        [
            "POLICY_NOT_TENANT_BOUND",
            "POLICY_NOT_TENANT_BOUND",
            "TENANT_POLICY_MISSING"
        ],
        "{default}"
    );
}

#[tokio::test]
async fn tables_the_role_cannot_reach_are_not_audited() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "CREATE SCHEMA billing;\n\
         CREATE TABLE billing.invoices (tenant_id text NOT NULL);\n\
         CREATE TABLE public.audit_log (tenant_id text NOT NULL);",
    )
    .await;
    // No USAGE on `billing`, no privilege on `audit_log`: out of reach.
    assert!(audit_app(&db).await.is_clean());

    exec(
        db.owner_url(),
        &format!(
            "GRANT USAGE ON SCHEMA billing TO {APP_ROLE};\n\
             GRANT SELECT ON billing.invoices TO {APP_ROLE};\n\
             GRANT INSERT (tenant_id) ON public.audit_log TO {APP_ROLE};"
        ),
    )
    .await;
    let report = audit_app(&db).await;
    let setting = || "app.current_tenant".to_owned();
    assert_eq!(
        report.findings,
        [
            Finding::RlsNotEnabled {
                table: "billing.invoices".into()
            },
            Finding::RlsNotForced {
                table: "billing.invoices".into()
            },
            Finding::NoTenantPolicy {
                table: "billing.invoices".into(),
                setting: setting(),
            },
            Finding::RlsNotEnabled {
                table: "public.audit_log".into()
            },
            Finding::RlsNotForced {
                table: "public.audit_log".into()
            },
            Finding::NoTenantPolicy {
                table: "public.audit_log".into(),
                setting: setting(),
            },
        ],
        "{report}"
    );
}

#[tokio::test]
async fn pool_starts_on_a_correct_setup() {
    let db = fresh_database().await;
    correct_setup(&db).await;

    let pool = TenantPool::connect(db.app_url()).await.expect("pool");
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    let ctx = Ctx::unvalidated()
        .with_tenant("acme")
        .validate::<Validated>()
        .expect("valid context");
    let mut tx = pool.begin(&ctx).await.expect("begin");
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM public.notes")
        .fetch_all(&mut tx)
        .await
        .expect("select");
    assert_eq!(tenants, ["acme"]);
    tx.rollback().await.expect("rollback");
}

#[tokio::test]
async fn pool_refuses_to_start_on_a_finding_unless_allowed() {
    let db = fresh_database().await;
    correct_setup(&db).await;
    exec(
        db.owner_url(),
        "ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY",
    )
    .await;

    let err = TenantPool::connect(db.app_url())
        .await
        .expect_err("a misconfigured database is refused");
    assert_eq!(err.code(), "AUDIT_FAILED");
    let expected = [Finding::RlsNotForced { table: notes() }];
    assert_eq!(err.audit_report().expect("report").findings, expected);

    let pool = TenantPool::builder()
        .allow_audit_findings(true)
        .connect(db.app_url())
        .await
        .expect("allowed explicitly");
    assert_eq!(pool.audit_report().findings, expected);
}
