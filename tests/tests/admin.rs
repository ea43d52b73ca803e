//! The admin path: built separately from its own URL, every use names a
//! reason that is logged at INFO, and nothing an admin connection leaves
//! behind reaches the next use.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{fixture, SEED};
use sqlx::Row;
use tenant_sqlx::{AdminPool, Error};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn every_admin_use_is_logged_with_its_reason() {
    let fx = fixture().await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runs on a current-thread runtime, so a thread default
    // captures everything this task logs.
    let _guard = tracing::subscriber::set_default(subscriber);

    // A cross-tenant job needs a role that bypasses RLS; here, the superuser.
    let admin = AdminPool::connect(fx.db.admin_url()).await.unwrap();
    let mut conn = admin.acquire("nightly usage report").await.unwrap();
    assert_eq!(conn.reason(), "nightly usage report");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        total,
        SEED[0].1 + SEED[1].1,
        "the admin path sees every tenant"
    );
    drop(conn);

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("admin connection acquired"))
        .unwrap_or_else(|| panic!("no admin log line in:\n{text}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("tenant_sqlx::admin"), "{line}");
    assert!(line.contains("nightly usage report"), "{line}");
}

#[tokio::test]
async fn an_admin_use_needs_a_reason() {
    let fx = fixture().await;
    let admin = AdminPool::connect(fx.db.owner_url()).await.unwrap();
    for reason in ["", "   "] {
        let err = admin.acquire(reason).await.unwrap_err();
        assert!(matches!(err, Error::AdminReasonRequired), "{err:?}");
        assert_eq!(err.code(), "ADMIN_REASON_REQUIRED");
    }
}

#[tokio::test]
async fn nothing_an_admin_use_leaves_behind_reaches_the_next() {
    let fx = fixture().await;
    let admin = AdminPool::connect(fx.db.owner_url()).await.unwrap();
    let mut conn = admin.acquire("migrate").await.unwrap();
    sqlx::raw_sql("SET app.current_tenant = 'tenant-a'; BEGIN")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let mut conn = admin.acquire("health check").await.unwrap();
    // A simple query, so that outside a transaction `now()` and
    // `statement_timestamp()` are the same instant.
    let row = sqlx::raw_sql(
        "SELECT current_setting('app.current_tenant', true), now() <> statement_timestamp()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (tenant, in_tx): (Option<String>, bool) = (row.get(0), row.get(1));
    assert_eq!(tenant, None, "a fresh session has no tenant");
    assert!(!in_tx, "a fresh session is not inside a transaction");
}
