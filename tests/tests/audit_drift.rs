//! The continuous audit: a pool that runs re-audits the database, refuses
//! new transactions when the database changed for the worse while it
//! served (`AUDIT_DRIFT`), serves again once it is fixed, and stops
//! auditing when closed or dropped.

mod common;

use std::time::{Duration, Instant};

use common::{ctx, exec, fixture, fixture_in, Fixture};
use tenant_sqlx::audit::Finding;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE};

const INTERVAL: Duration = Duration::from_secs(1);
/// How long a test waits for what should happen within one interval (the
/// machine is shared: generous, and the figure seen is printed).
const PATIENCE: Duration = Duration::from_secs(15);

async fn watched_pool(fx: &Fixture, refuse: bool) -> TenantPool {
    TenantPool::builder()
        .max_connections(2)
        .audit_interval(Some(INTERVAL))
        .refuse_on_audit_drift(refuse)
        .connect(fx.db.app_url())
        .await
        .expect("the fixture passes the audit")
}

/// A tenant-a transaction: `Ok` or the error's code.
async fn serve(pool: &TenantPool) -> Result<i64, &'static str> {
    let a = ctx("tenant-a");
    let mut tx = pool.begin(&a).await.map_err(|e| e.code())?;
    let n = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect("count");
    tx.commit().await.expect("commit");
    Ok(n)
}

/// Serves requests until `want` holds for one of them; returns how long it
/// took.
async fn serve_until(
    pool: &TenantPool,
    what: &str,
    want: impl Fn(&Result<i64, &'static str>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let outcome = serve(pool).await;
        if want(&outcome) {
            let took = start.elapsed();
            eprintln!("{what}: after {took:?} (interval {INTERVAL:?})");
            return took;
        }
        assert!(start.elapsed() < PATIENCE, "{what}: still {outcome:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn audit_connections(fx: &mut Fixture) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'tenant-sqlx audit'",
    )
    .fetch_one(&mut fx.admin)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn ddl_grant_and_setting_drift_refuse_begins_until_fixed() {
    let mut fx = fixture().await;
    let pool = watched_pool(&fx, true).await;
    assert_eq!(serve(&pool).await, Ok(3));

    // DDL: a definer view over the tenant table, made by the superuser.
    exec(
        fx.db.admin_url(),
        &format!(
            "CREATE VIEW public.all_notes AS SELECT * FROM public.notes;\n\
             GRANT SELECT ON public.all_notes TO {APP_ROLE};"
        ),
    )
    .await;
    serve_until(&pool, "definer view refused", |o| *o == Err("AUDIT_DRIFT")).await;
    let drift = pool.audit_drift();
    assert!(
        matches!(drift.as_slice(), [Finding::ViewNotSecurityInvoker { view, .. }] if view == "public.all_notes"),
        "{drift:?}"
    );
    assert_eq!(pool.audit_findings(), drift);
    let a = ctx("tenant-a");
    let err = pool.begin(&a).await.expect_err("refused");
    assert!(
        err.to_string().contains("VIEW_NOT_SECURITY_INVOKER"),
        "{err}"
    );
    exec(fx.db.admin_url(), "DROP VIEW public.all_notes").await;
    serve_until(&pool, "served again", |o| *o == Ok(3)).await;
    assert!(pool.audit_drift().is_empty());

    // A grant.
    exec(
        fx.db.owner_url(),
        &format!("GRANT TRUNCATE ON notes TO {APP_ROLE}"),
    )
    .await;
    serve_until(&pool, "TRUNCATE grant refused", |o| {
        *o == Err("AUDIT_DRIFT")
    })
    .await;
    assert_eq!(
        pool.audit_drift()
            .iter()
            .map(Finding::code)
            .collect::<Vec<_>>(),
        ["TRUNCATE_ALLOWED"]
    );
    exec(
        fx.db.owner_url(),
        &format!("REVOKE TRUNCATE ON notes FROM {APP_ROLE}"),
    )
    .await;
    serve_until(&pool, "served again", |o| *o == Ok(3)).await;

    // A stored setting that no start-up option pins: a default tenant.
    let db = fx.db.name().to_owned();
    exec(
        fx.db.admin_url(),
        &format!("ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET app.current_tenant = 'tenant-b'"),
    )
    .await;
    serve_until(&pool, "stored default refused", |o| {
        *o == Err("AUDIT_DRIFT")
    })
    .await;
    assert_eq!(
        pool.audit_drift()
            .iter()
            .map(Finding::code)
            .collect::<Vec<_>>(),
        ["SETTING_STORED_DEFAULT"]
    );
    // A stored setting the pool pins is no drift: the transaction above
    // and the next ones are unaffected.
    exec(
        fx.db.admin_url(),
        &format!(
            "ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" RESET app.current_tenant;\n\
             ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET default_transaction_read_only = on;"
        ),
    )
    .await;
    serve_until(&pool, "served again", |o| *o == Ok(3)).await;
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(serve(&pool).await, Ok(3));
    assert!(pool.audit_drift().is_empty(), "{:?}", pool.audit_drift());

    // Closing the pool ends the audit and its connection.
    assert_eq!(audit_connections(&mut fx).await, 1);
    pool.close().await;
    let start = Instant::now();
    while audit_connections(&mut fx).await > 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the audit connection outlived close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn drift_is_only_logged_when_the_pool_is_told_so() {
    let fx = fixture().await;
    let pool = watched_pool(&fx, false).await;
    exec(
        fx.db.owner_url(),
        &format!("GRANT TRUNCATE ON notes TO {APP_ROLE}"),
    )
    .await;
    let start = Instant::now();
    while pool.audit_drift().is_empty() {
        assert!(start.elapsed() < PATIENCE, "no drift seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.audit_drift()[0].code(), "TRUNCATE_ALLOWED");
    assert_eq!(serve(&pool).await, Ok(3));
}

#[tokio::test]
async fn dropping_the_pool_ends_the_audit() {
    let mut fx = fixture().await;
    let pool = watched_pool(&fx, true).await;
    let start = Instant::now();
    while audit_connections(&mut fx).await == 0 {
        assert!(start.elapsed() < PATIENCE, "no audit connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(pool);
    let start = Instant::now();
    while audit_connections(&mut fx).await > 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the audit connection outlived the pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn findings_allowed_at_start_are_no_drift() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!("GRANT TRUNCATE ON notes TO {APP_ROLE}"),
    )
    .await;
    let pool = TenantPool::builder()
        .audit_interval(Some(INTERVAL))
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .expect("pool");
    tokio::time::sleep(INTERVAL * 3).await;
    assert!(pool.audit_drift().is_empty());
    assert_eq!(
        pool.audit_findings()
            .iter()
            .map(Finding::code)
            .collect::<Vec<_>>(),
        ["TRUNCATE_ALLOWED"]
    );
    assert_eq!(serve(&pool).await, Ok(3));
}

#[tokio::test]
async fn a_setting_reloaded_while_serving_is_drift() {
    // `ALTER SYSTEM` reaches every database: a private cluster.
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, None, false).await;
    let pool = watched_pool(&fx, true).await;
    assert_eq!(serve(&pool).await, Ok(3));
    // pg_stat_statements would now keep every begin message, tenant ids
    // included (the audit reads the setting whether or not the library is
    // loaded).
    // As an administrator editing postgresql.conf and reloading would.
    let conf = cluster
        .dir()
        .expect("a throwaway cluster")
        .join("data/postgresql.conf");
    let original = std::fs::read_to_string(&conf).expect("postgresql.conf");
    std::fs::write(
        &conf,
        format!("{original}\npg_stat_statements.track_utility = on\n"),
    )
    .expect("write postgresql.conf");
    exec(fx.db.admin_url(), "SELECT pg_reload_conf()").await;
    serve_until(&pool, "track_utility refused", |o| *o == Err("AUDIT_DRIFT")).await;
    assert_eq!(
        pool.audit_drift()
            .iter()
            .map(Finding::code)
            .collect::<Vec<_>>(),
        ["UTILITY_STATEMENTS_TRACKED"]
    );
    std::fs::write(&conf, original).expect("restore postgresql.conf");
    exec(fx.db.admin_url(), "SELECT pg_reload_conf()").await;
    serve_until(&pool, "served again", |o| *o == Ok(3)).await;
}
