//! Settings pinned at connect time: what the application role stores for
//! itself (`ALTER ROLE CURRENT_USER SET …`, from SQL inside a tenant
//! transaction) reaches neither the pool's next session nor its next start;
//! the audit accepts a stored setting the pool pins and reports one it does
//! not.

mod common;

use std::time::Duration;

use common::{ctx, exec, fixture, fixture_in, SEED};
use sqlx::{Connection, PgConnection};
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE};

const A: &str = "tenant-a";

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// A tenant-a transaction on a fresh session of `pool`'s: it waits between
/// statements, sleeps inside one, reads `search_path` and the notes.
async fn a_full_transaction(pool: &TenantPool) -> (String, i64) {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    tokio::time::sleep(Duration::from_millis(50)).await;
    sqlx::query("SELECT pg_sleep(0.05)")
        .execute(&mut tx)
        .await
        .expect("no statement timeout");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut tx)
        .await
        .expect("search_path");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect("notes");
    tx.commit().await.expect("commit");
    (path, n)
}

#[tokio::test]
async fn settings_stored_from_a_tenant_transaction_change_nothing() {
    // `ALTER ROLE CURRENT_USER` reaches every database: a private cluster.
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, None, false).await;
    let version = cluster.server_version_num().await.expect("version");
    let pool = TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
        .expect("pool");

    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let mut statements = vec![
        "ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'",
        "ALTER ROLE CURRENT_USER SET idle_in_transaction_session_timeout = '1ms'",
        "ALTER ROLE CURRENT_USER SET search_path = nowhere",
        "ALTER ROLE CURRENT_USER SET default_transaction_read_only = on",
        "ALTER ROLE CURRENT_USER SET lock_timeout = '1ms'",
    ];
    if version >= 170_000 {
        statements.push("ALTER ROLE CURRENT_USER SET transaction_timeout = '1ms'");
    }
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut tx)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    tx.commit().await.expect("commit");

    // Real: a session without the pool's start-up options is broken.
    let mut plain = PgConnection::connect(fx.db.app_url()).await.expect("plain");
    let err = sqlx::query("SELECT pg_sleep(0.05)")
        .execute(&mut plain)
        .await
        .expect_err("the stored timeout applies");
    // 57014: statement timeout; 25P04: PostgreSQL 17's transaction timeout.
    assert!(
        matches!(sqlstate(&err).as_deref(), Some("57014" | "25P04")),
        "{err}"
    );
    drop(plain);

    // The pool's next session: its connection closed, a fresh one.
    pool.close().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
        .expect("the next start passes the audit: the stored settings are pinned");
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    let (path, n) = a_full_transaction(&pool).await;
    assert_eq!(path, "\"$user\", public");
    assert_eq!(n, SEED[0].1);
    // A write: not read-only.
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'pinned', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    // Without pinning, the restarted pool cannot even run its audit: the
    // stored timeouts cancel it.
    pool.close().await;
    let err = TenantPool::builder()
        .pin_settings(false)
        .connect(fx.db.app_url())
        .await
        .expect_err("unpinned, the stored settings break the start");
    eprintln!("without pinning: {err}");
    assert_eq!(err.code(), "DATABASE", "{err}");
}

#[tokio::test]
async fn stored_read_only_and_row_security_are_pinned_and_accepted() {
    let fx = fixture().await;
    let db = fx.db.name().to_owned();
    exec(
        fx.db.admin_url(),
        &format!(
            "ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET default_transaction_read_only = on;\n\
             ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET row_security = off;"
        ),
    )
    .await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
        .expect("pinned: accepted");
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'rw', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .expect("writes");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect("row security on");
    tx.commit().await.expect("commit");
    assert_eq!(n, SEED[0].1 + 1);

    // On a connection without the pool's options, both are in force and
    // the audit reports them.
    let mut plain = PgConnection::connect(fx.db.app_url()).await.expect("plain");
    let report = tenant_sqlx::audit::run(&mut plain, &Default::default(), "tenant_id")
        .await
        .expect("audit");
    assert_eq!(
        report.codes(),
        ["SETTING_STORED_FOR_SESSIONS", "SETTING_STORED_FOR_SESSIONS"],
        "{report}"
    );
}

#[tokio::test]
async fn a_value_of_the_applications_own_is_pinned_instead() {
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .pin_setting("statement_timeout", "40ms")
        .connect(fx.db.app_url())
        .await
        .expect("pool");
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let err = sqlx::query("SELECT pg_sleep(0.2)")
        .execute(&mut tx)
        .await
        .expect_err("the application's timeout");
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
}
