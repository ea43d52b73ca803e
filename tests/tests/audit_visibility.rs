//! The start-up audit against settings that let one session read the
//! statements of another: `track_activities = on` for the application role
//! (`QUERY_TEXT_VISIBLE`) and `pg_stat_statements` recording utility
//! statements (`UTILITY_STATEMENTS_TRACKED`). The audit checks both for
//! every pool, hardened or not.
//!
//! A begin message carries the tenant (`SET LOCAL "app"."current_tenant" =
//! 'tenant-b'`) and, in hardened mode, its proof. Each test first shows that
//! another tenant's session of the same role reads it through a
//! `TenantPool` started with `allow_audit_findings(true)`, then that a
//! strict pool refuses to start with exactly that finding, then applies the
//! fix the finding names and shows that the same database starts and leaks
//! no more. The settings are cluster-wide (a role's, or the server's), so
//! every test runs on a private cluster.

mod common;

use std::time::{Duration, Instant};

use common::{ctx, exec, fixture_in, leaky_pool, notes, refused, Fixture, SEED};
use sqlx::{Connection, PgConnection};
use tenant_sqlx::audit::{AuditReport, Finding};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::{Error, TenantPool};
use tenant_testing::{TestCluster, APP_ROLE};

const A: &str = "tenant-a";
const B: &str = "tenant-b";
const SECRET: &[u8] = b"audit-visibility-test-secret-0123456789abcdef";
/// How B's tenant appears in its begin message.
const B_IN_BEGIN: &str = "\"app\".\"current_tenant\" = 'tenant-b'";

/// The value of `setting` in a fresh session of the application role.
async fn app_setting(fx: &Fixture, setting: &str) -> String {
    let mut conn = PgConnection::connect(fx.db.app_url()).await.expect("app");
    let value = sqlx::query_scalar("SELECT current_setting($1)")
        .bind(setting)
        .fetch_one(&mut conn)
        .await
        .expect("current_setting");
    conn.close().await.expect("close");
    value
}

/// While tenant B's transaction is open on one connection of `pool`
/// (its begin message the last statement its session ran), what tenant
/// A's transaction on another connection reads of the statements of the
/// role's other sessions in `pg_stat_activity`.
async fn statements_a_reads_while_b_is_open(pool: &TenantPool) -> Vec<String> {
    let b = ctx(B);
    let tx_b = pool.begin(&b).await.expect("begin B");
    let a = ctx(A);
    let mut spy = pool.begin(&a).await.expect("begin A");
    let texts: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND usename = current_user \
           AND datname = current_database()",
    )
    .fetch_all(&mut spy)
    .await
    .expect("pg_stat_activity");
    spy.rollback().await.expect("rollback A");
    tx_b.rollback().await.expect("rollback B");
    assert!(!texts.is_empty(), "B's session is listed");
    texts.into_iter().map(Option::unwrap_or_default).collect()
}

/// The text of the finding, which names the fix.
fn says(report: &AuditReport, fix: &str) {
    assert!(report.to_string().contains(fix), "{report}");
}

#[tokio::test]
async fn track_activities_on_shows_other_tenants_ids_and_is_refused() {
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, None, false).await;
    // Without the harness's `ALTER ROLE … SET track_activities = off`, the
    // role has the server's default.
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} RESET track_activities"),
    )
    .await;
    assert_eq!(app_setting(&fx, "track_activities").await, "on");

    let pool = leaky_pool(&fx).await;
    let texts = statements_a_reads_while_b_is_open(&pool).await;
    assert!(
        texts.iter().any(|t| t.contains(B_IN_BEGIN)),
        "tenant A's session does not read B's begin message: {texts:?}"
    );
    pool.close().await;

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::QueryTextVisible {
            role: APP_ROLE.into()
        }],
        "{report}"
    );
    assert_eq!(report.codes(), ["QUERY_TEXT_VISIBLE"]);
    let fix = format!("ALTER ROLE {APP_ROLE} SET track_activities = off");
    says(&report, &fix);

    // The fix the finding names, on the same database: a strict pool
    // starts, and other sessions' statements read as nothing.
    exec(fx.db.admin_url(), &fix).await;
    let pool = TenantPool::builder()
        .max_connections(2)
        .connect(fx.db.app_url())
        .await
        .expect("the fixed role passes the audit");
    let texts = statements_a_reads_while_b_is_open(&pool).await;
    assert!(
        !texts.iter().any(|t| t.contains(B)),
        "B's tenant is still readable: {texts:?}"
    );
}

#[tokio::test]
async fn track_activities_on_gives_away_hardened_proofs_and_is_refused() {
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, Some(SECRET), true).await;
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} RESET track_activities"),
    )
    .await;
    let secret = || GuardSecret::new(SECRET).expect("secret");

    // B's begin message carries its proof: A's session copies it and reads
    // B's rows with it, which hardened mode exists to prevent.
    let pool = TenantPool::builder()
        .max_connections(2)
        .hardened(secret())
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .expect("leaky hardened pool");
    let b = ctx(B);
    let tx_b = pool.begin(&b).await.expect("begin B");
    let a = ctx(A);
    let mut spy = pool.begin(&a).await.expect("begin A");
    let texts: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND usename = current_user",
    )
    .fetch_all(&mut spy)
    .await
    .expect("pg_stat_activity");
    let marker = "\"app\".\"tenant_proof\" = '";
    let proof_b = texts
        .iter()
        .flatten()
        .filter(|t| t.contains(B_IN_BEGIN))
        .find_map(|t| {
            let rest = &t[t.find(marker)? + marker.len()..];
            Some(rest[..rest.find('\'')?].to_owned())
        })
        .unwrap_or_else(|| panic!("no begin message of B with its proof: {texts:?}"));
    sqlx::query(
        "SELECT set_config('app.current_tenant', $1, true), \
                set_config('app.tenant_proof', $2, true)",
    )
    .bind(B)
    .bind(&proof_b)
    .execute(&mut spy)
    .await
    .expect("forge B");
    let of_b: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
        .bind(B)
        .fetch_one(&mut spy)
        .await
        .expect("count");
    assert_eq!(of_b, SEED[1].1, "A's session reads B's rows with B's proof");
    spy.rollback().await.expect("rollback A");
    tx_b.rollback().await.expect("rollback B");
    pool.close().await;

    let err = TenantPool::builder()
        .hardened(secret())
        .connect(fx.db.app_url())
        .await
        .expect_err("the strict hardened pool refuses to start");
    assert!(matches!(err, Error::AuditFailed(_)), "{err}");
    let report = err.audit_report().expect("a report");
    assert_eq!(report.codes(), ["QUERY_TEXT_VISIBLE"], "{report}");

    let fix = format!("ALTER ROLE {APP_ROLE} SET track_activities = off");
    says(report, &fix);
    exec(fx.db.admin_url(), &fix).await;
    let pool = TenantPool::builder()
        .hardened(secret())
        .connect(fx.db.app_url())
        .await
        .expect("the fixed role passes the hardened audit");
    assert_eq!(notes(&pool, &a).await.expect("A"), SEED[0].1);
}

#[tokio::test]
async fn pg_stat_statements_keeps_other_tenants_ids_and_is_refused() {
    // The library must be loaded when the server starts; nothing else is
    // configured, so `track_utility` has its default.
    let cluster = TestCluster::builder()
        .setting("shared_preload_libraries", "pg_stat_statements")
        .start()
        .await
        .expect("private cluster with pg_stat_statements");
    let fx = fixture_in(&cluster, None, false).await;
    exec(fx.db.admin_url(), "CREATE EXTENSION pg_stat_statements").await;
    assert_eq!(
        app_setting(&fx, "pg_stat_statements.track_utility").await,
        "on"
    );
    // The role keeps the harness's `track_activities = off`: this is the
    // only finding.
    assert_eq!(app_setting(&fx, "track_activities").await, "off");

    let pool = leaky_pool(&fx).await;
    let recorded = statements_recorded_after_b(&pool).await;
    assert!(
        recorded.iter().any(|t| t.contains(B_IN_BEGIN)),
        "B's begin message is not kept: {recorded:?}"
    );
    pool.close().await;

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::UtilityStatementsTracked],
        "{report}"
    );
    assert_eq!(report.codes(), ["UTILITY_STATEMENTS_TRACKED"]);
    says(
        &report,
        "ALTER SYSTEM SET pg_stat_statements.track_utility = off",
    );

    // The fix the finding names, then a reload; new sessions see it once
    // the server has processed the reload.
    exec(
        fx.db.admin_url(),
        "ALTER SYSTEM SET pg_stat_statements.track_utility = off",
    )
    .await;
    exec(fx.db.admin_url(), "SELECT pg_reload_conf()").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app_setting(&fx, "pg_stat_statements.track_utility").await != "off" {
        assert!(Instant::now() < deadline, "the reload is not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = TenantPool::builder()
        .max_connections(2)
        .connect(fx.db.app_url())
        .await
        .expect("the fixed server passes the audit");
    exec(fx.db.admin_url(), "SELECT pg_stat_statements_reset()").await;
    let recorded = statements_recorded_after_b(&pool).await;
    assert!(
        !recorded.iter().any(|t| t.contains(B)),
        "B's tenant is still kept: {recorded:?}"
    );
    // Still recording, so the absence above is not an empty view.
    assert!(
        recorded.iter().any(|t| t.contains("FROM notes")),
        "{recorded:?}"
    );
}

/// After a transaction of tenant B through `pool`, what tenant A's
/// transaction reads of the statements `pg_stat_statements` keeps.
async fn statements_recorded_after_b(pool: &TenantPool) -> Vec<String> {
    assert_eq!(notes(pool, &ctx(B)).await.expect("B"), SEED[1].1);
    let a = ctx(A);
    let mut spy = pool.begin(&a).await.expect("begin A");
    let texts: Vec<Option<String>> = sqlx::query_scalar("SELECT query FROM pg_stat_statements")
        .fetch_all(&mut spy)
        .await
        .expect("pg_stat_statements");
    spy.rollback().await.expect("rollback A");
    texts.into_iter().flatten().collect()
}

/// A setting stored for the role in one database takes precedence over the
/// role's own: the role says `off` (the harness's), the database says `on`.
/// The audit reads the value the session really has, so it refuses, and
/// its message names where to reset it.
#[tokio::test]
async fn track_activities_on_for_the_role_in_one_database_is_refused() {
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, None, false).await;
    let name = fx.db.name().to_owned();
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} IN DATABASE \"{name}\" SET track_activities = on"),
    )
    .await;
    assert_eq!(app_setting(&fx, "track_activities").await, "on");

    let report = refused(&fx).await;
    assert_eq!(report.codes(), ["QUERY_TEXT_VISIBLE"], "{report}");
    says(&report, &format!("ALTER ROLE {APP_ROLE} IN DATABASE"));

    // The role-wide fix alone does not override the database's setting...
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} SET track_activities = off"),
    )
    .await;
    assert_eq!(refused(&fx).await.codes(), ["QUERY_TEXT_VISIBLE"]);
    // ...resetting it there does.
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} IN DATABASE \"{name}\" RESET track_activities"),
    )
    .await;
    TenantPool::builder()
        .max_connections(2)
        .connect(fx.db.app_url())
        .await
        .expect("the reset passes the audit");
}
