//! The hardened-mode audit on a real PostgreSQL: the policies must read
//! the guard, and the guard must be the one `Guard` installs, out of the
//! application role's reach.
//!
//! Each test starts from the common fixture's table and rows with hardened
//! policies and the guard installed by the harness (owned by the NOLOGIN
//! `GUARD_ROLE`), breaks one thing as the superuser, shows what that does
//! first (a forged tenant reads another tenant's rows through a hardened
//! `TenantPool` started with `allow_audit_findings(true)`; where the
//! misconfiguration fails closed, that every statement fails), then shows
//! that a strict hardened pool refuses to start with the finding.

mod common;

use common::{ctx, exec, fresh_proof, Fixture, SEED};
use sqlx::{Connection, PgConnection};
use tenant_sqlx::audit::{self, AuditOptions, AuditReport, Finding, PolicyClause};
use tenant_sqlx::guard::{Guard, GuardSecret};
use tenant_sqlx::{memory, Error, SettingNames, TenantPool};
use tenant_testing::{APP_ROLE, GUARD_ROLE};

const SECRET: &[u8] = b"hardened-audit-test-secret-0123456789abcdef";
const A: &str = "tenant-a";
const B: &str = "tenant-b";
const FUNCTION: &str = "tenant_guard.current_tenant()";
/// Inside tenant A's transaction: switch to tenant B by hand.
const FORGE_B: &str = "SELECT set_config('app.current_tenant', 'tenant-b', true)";

fn secret() -> GuardSecret {
    GuardSecret::new(SECRET).expect("secret")
}

/// A fresh database with the common `notes` table and rows, the guard,
/// and policies written by the helper, hardened or not.
async fn guarded_fixture(hardened_policies: bool) -> Fixture {
    common::fixture_with(Some(SECRET), hardened_policies).await
}

/// A hardened pool that starts in spite of the findings.
async fn leaky_pool(fx: &Fixture) -> TenantPool {
    TenantPool::builder()
        .max_connections(2)
        .hardened(secret())
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .expect("pool")
}

/// The report a strict hardened pool refuses to start with.
async fn refused(fx: &Fixture) -> AuditReport {
    let err = TenantPool::builder()
        .hardened(secret())
        .connect(fx.db.app_url())
        .await
        .expect_err("the strict hardened pool refuses to start");
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
    err.audit_report().expect("a report").clone()
}

/// In tenant A's transaction, runs `forgery`, then counts tenant B's rows.
async fn b_rows_after(pool: &TenantPool, forgery: &str) -> Result<i64, sqlx::Error> {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::raw_sql(forgery).execute(&mut tx).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = 'tenant-b'")
        .fetch_one(&mut tx)
        .await?;
    tx.rollback().await.expect("rollback");
    Ok(n)
}

/// What a statement on `notes` in tenant A's transaction fails with.
async fn sqlstate_of_a_read(pool: &TenantPool) -> Option<String> {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect_err("the read fails");
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn a_correct_hardened_schema_has_no_findings() {
    let fx = guarded_fixture(true).await;
    // The memory module's hardened migration beside it.
    exec(
        fx.db.owner_url(),
        &memory::migration_for(&SettingNames::default(), APP_ROLE, true),
    )
    .await;

    let mut app = PgConnection::connect(fx.db.app_url()).await.expect("app");
    let options = AuditOptions::new(SettingNames::default(), "tenant_id").hardened(true);
    let report = audit::run_with(&mut app, &options).await.expect("audit");
    assert_eq!(report.findings, [], "{report}");

    let pool = TenantPool::builder()
        .hardened(secret())
        .connect(fx.db.app_url())
        .await
        .expect("a correct hardened schema passes");
    assert!(pool.audit_report().is_clean());
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM notes")
        .fetch_all(&mut tx)
        .await
        .expect("select");
    tx.rollback().await.expect("rollback");
    assert_eq!(tenants, [A]);
    assert_eq!(b_rows_after(&pool, FORGE_B).await.expect("forged"), 0);
}

#[tokio::test]
async fn a_policy_reading_the_bare_setting_is_refused_in_hardened_mode() {
    let fx = guarded_fixture(false).await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        b_rows_after(&pool, FORGE_B).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    let bare = |clause| Finding::PolicyReadsBareSetting {
        table: "public.notes".into(),
        policy: "tenant_isolation".into(),
        clause,
        setting: "app.current_tenant".into(),
    };
    assert_eq!(
        report.findings,
        [bare(PolicyClause::Using), bare(PolicyClause::WithCheck)],
        "{report}"
    );
}

#[tokio::test]
async fn a_missing_guard_is_reported() {
    // No guard at all: the bare-setting policies are all there is.
    let fx = common::fixture().await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        b_rows_after(&pool, FORGE_B).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.codes(),
        [
            "POLICY_READS_BARE_SETTING",
            "POLICY_READS_BARE_SETTING",
            "GUARD_MISSING",
            "GUARD_MISSING"
        ],
        "{report}"
    );
    assert_eq!(
        report.findings[2],
        Finding::GuardMissing {
            object: format!("FUNCTION {FUNCTION}")
        }
    );
    assert_eq!(
        report.findings[3],
        Finding::GuardMissing {
            object: "TABLE tenant_guard.secrets".into()
        }
    );
}

#[tokio::test]
async fn a_replaced_guard_body_accepts_a_forged_tenant() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        "CREATE OR REPLACE FUNCTION tenant_guard.current_tenant() RETURNS text \
           LANGUAGE plpgsql STABLE SECURITY DEFINER \
           AS $$ BEGIN RETURN pg_catalog.current_setting('app.current_tenant', true); END $$",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        b_rows_after(&pool, FORGE_B).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardBodyChanged {
            function: FUNCTION.into()
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_guard_in_sql_is_not_the_guard() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        "CREATE OR REPLACE FUNCTION tenant_guard.current_tenant() RETURNS text \
           LANGUAGE sql STABLE SECURITY DEFINER \
           AS $$ SELECT pg_catalog.current_setting('app.current_tenant', true) $$",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        b_rows_after(&pool, FORGE_B).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [
            Finding::GuardNotPlpgsql {
                function: FUNCTION.into(),
                language: "sql".into(),
            },
            Finding::GuardBodyChanged {
                function: FUNCTION.into()
            },
        ],
        "{report}"
    );
}

#[tokio::test]
async fn a_set_clause_on_the_guard_can_fix_the_proof() {
    let fx = guarded_fixture(true).await;
    // The body is untouched, but the proof it checks is now always B's.
    let proof_b = fresh_proof(SECRET, B);
    exec(
        fx.db.admin_url(),
        &format!("ALTER FUNCTION {FUNCTION} SET app.tenant_proof = '{proof_b}'"),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        b_rows_after(&pool, FORGE_B).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardHasSetClause {
            function: FUNCTION.into(),
            config: vec![format!("app.tenant_proof={proof_b}")],
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_guard_owned_by_the_application_role_can_be_replaced() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        &format!(
            "ALTER SCHEMA tenant_guard OWNER TO {APP_ROLE};\n\
             ALTER FUNCTION {FUNCTION} OWNER TO {APP_ROLE};"
        ),
    )
    .await;

    // The application replaces the guard with one that trusts the setting.
    let pool = leaky_pool(&fx).await;
    let replace = "CREATE OR REPLACE FUNCTION tenant_guard.current_tenant() RETURNS text \
           LANGUAGE plpgsql STABLE SECURITY DEFINER \
           AS $$ BEGIN RETURN pg_catalog.current_setting('app.current_tenant', true); END $$";
    assert_eq!(
        b_rows_after(&pool, &format!("{replace}; {FORGE_B}"))
            .await
            .expect("replaced and forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    let owned = |object: &str| Finding::GuardOwnedByApplicationRole {
        object: object.into(),
        owner: APP_ROLE.into(),
        role: APP_ROLE.into(),
    };
    assert_eq!(
        report.findings,
        [
            owned("SCHEMA tenant_guard"),
            owned(&format!("FUNCTION {FUNCTION}"))
        ],
        "{report}"
    );
}

#[tokio::test]
async fn secrets_readable_by_the_application_role_forge_any_proof() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        &format!("GRANT SELECT ON tenant_guard.secrets TO {APP_ROLE}"),
    )
    .await;

    // The application computes B's proof from the secret, in SQL.
    let pool = leaky_pool(&fx).await;
    let forge = "SELECT set_config('app.current_tenant', 'tenant-b', true), \
                        set_config('app.tenant_proof', until || '.' || encode(tenant_guard.hmac(\
                            convert_to(until || '.tenant-b', 'UTF8'), secret, 'sha256'), 'hex'), true) \
                 FROM tenant_guard.secrets, \
                      (SELECT (extract(epoch FROM now())::bigint + 60)::text AS until) u \
                 LIMIT 1";
    assert_eq!(b_rows_after(&pool, forge).await.expect("forged"), SEED[1].1);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardSecretsAccessible {
            table: "tenant_guard.secrets".into(),
            role: APP_ROLE.into(),
            privileges: vec!["SELECT".into()],
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_writable_guard_schema_lets_the_application_plant_a_secret() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        &format!("GRANT CREATE ON SCHEMA tenant_guard TO {APP_ROLE}"),
    )
    .await;
    // The operator resets the guard's secrets to reinstall it...
    exec(fx.db.admin_url(), "DROP TABLE tenant_guard.secrets").await;
    // ...the application gets there first with a table of its own...
    let planted = b"a-secret-the-application-planted-itself";
    let mut app = PgConnection::connect(fx.db.app_url()).await.expect("app");
    sqlx::raw_sql(&format!(
        "CREATE TABLE tenant_guard.secrets \
           (id text PRIMARY KEY, secret bytea NOT NULL, added timestamptz NOT NULL DEFAULT now());\n\
         GRANT SELECT ON tenant_guard.secrets TO PUBLIC;\n{}",
        Guard::new().add_secret_sql("planted", planted)
    ))
    .execute(&mut app)
    .await
    .expect("plant");
    app.close().await.expect("close");
    // ...and the reinstallation keeps it (`CREATE TABLE IF NOT EXISTS`),
    // secret and all.
    let guard = Guard::new().owner(GUARD_ROLE).grant_to(APP_ROLE);
    exec(fx.db.admin_url(), &guard.sql()).await;
    exec(fx.db.admin_url(), &guard.add_secret_sql("fresh", SECRET)).await;

    let pool = leaky_pool(&fx).await;
    let forge = format!(
        "{FORGE_B}; SELECT set_config('app.tenant_proof', '{}', true)",
        fresh_proof(planted, B)
    );
    assert_eq!(
        b_rows_after(&pool, &forge).await.expect("forged"),
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardSchemaWritable {
            schema: "tenant_guard".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_guard_that_is_not_security_definer_fails_every_statement() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        &format!("ALTER FUNCTION {FUNCTION} SECURITY INVOKER"),
    )
    .await;

    // It reads the secrets as the application role, which may not (and
    // must not be granted to).
    let pool = leaky_pool(&fx).await;
    assert_eq!(sqlstate_of_a_read(&pool).await.as_deref(), Some("42501"));

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardNotSecurityDefiner {
            function: FUNCTION.into()
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_guard_the_application_may_not_execute_fails_every_statement() {
    let fx = guarded_fixture(true).await;
    exec(
        fx.db.admin_url(),
        &format!("REVOKE EXECUTE ON FUNCTION {FUNCTION} FROM {APP_ROLE}"),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(sqlstate_of_a_read(&pool).await.as_deref(), Some("42501"));

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardNotExecutable {
            function: FUNCTION.into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_guard_owned_by_a_superuser_is_reported() {
    let mut fx = guarded_fixture(true).await;
    let superuser: String = sqlx::query_scalar("SELECT format('%I', current_user)")
        .fetch_one(&mut fx.admin)
        .await
        .expect("current_user");
    exec(
        fx.db.admin_url(),
        &format!("ALTER FUNCTION {FUNCTION} OWNER TO {superuser}"),
    )
    .await;

    // No leak today: the body is still the guard's. But the function now
    // runs with every right, so a flaw in it, or in the pgcrypto function
    // it calls, would too; it needs only to read the secrets.
    let pool = leaky_pool(&fx).await;
    assert_eq!(b_rows_after(&pool, FORGE_B).await.expect("forged"), 0);
    let runs_as_superuser: bool = sqlx::query_scalar(
        "SELECT r.rolsuper FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
         WHERE p.oid = 'tenant_guard.current_tenant()'::regprocedure",
    )
    .fetch_one(&mut fx.admin)
    .await
    .expect("owner");
    assert!(runs_as_superuser);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::GuardOwnedBySuperuser {
            function: FUNCTION.into(),
            owner: superuser,
        }],
        "{report}"
    );
}
