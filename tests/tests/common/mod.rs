//! Shared set-up for the `TenantPool` tests: a fresh database on the shared
//! harness cluster with one tenant table, its RLS policy, and two tenants'
//! rows, seeded by the superuser.
#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};

/// Rows seeded per tenant: (tenant, number of notes).
pub const SEED: [(&str, i64); 2] = [("tenant-a", 3), ("tenant-b", 5)];

/// A database with the `notes` table, and a way to look from outside.
pub struct Fixture {
    pub db: TestDatabase,
    /// The superuser, to inspect `pg_stat_activity` and the true contents.
    pub admin: PgConnection,
}

/// The schema, as a migration run by the owner role would create it.
pub fn schema() -> String {
    schema_for(false)
}

/// [`schema`], with the policy of hardened mode when `hardened`.
pub fn schema_for(hardened: bool) -> String {
    format!(
        "CREATE TABLE notes (
             id bigserial NOT NULL,
             tenant_id text NOT NULL,
             slug text NOT NULL,
             body text NOT NULL,
             PRIMARY KEY (tenant_id, id),
             UNIQUE (tenant_id, slug)
         );
         GRANT USAGE ON SEQUENCE notes_id_seq TO {APP_ROLE};
         {}",
        RlsPolicy::new("notes", "tenant_id")
            .hardened(hardened)
            .grant_to(APP_ROLE)
            .sql()
    )
}

pub async fn fixture() -> Fixture {
    fixture_with(None, false).await
}

/// [`fixture`], with hardened mode's guard installed with `guard_secret`
/// when given, and hardened policies when `hardened_policies`.
pub async fn fixture_with(guard_secret: Option<&[u8]>, hardened_policies: bool) -> Fixture {
    let cluster = TestCluster::shared().await.expect("test cluster");
    fixture_in(cluster, guard_secret, hardened_policies).await
}

/// [`fixture_with`] on `cluster` (a private one, for tests that change
/// roles, which every database of a cluster shares).
pub async fn fixture_in(
    cluster: &TestCluster,
    guard_secret: Option<&[u8]>,
    hardened_policies: bool,
) -> Fixture {
    let db = cluster.create_database().await.expect("test database");
    if let Some(secret) = guard_secret {
        db.install_guard(secret).await.expect("guard");
    }
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    sqlx::raw_sql(&schema_for(hardened_policies))
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    for (tenant, n) in SEED {
        sqlx::query(
            "INSERT INTO notes (tenant_id, slug, body)
             SELECT $1, $1 || '-' || g, 'note ' || g FROM generate_series(1, $2) g",
        )
        .bind(tenant)
        .bind(n)
        .execute(&mut admin)
        .await
        .unwrap();
    }
    Fixture { db, admin }
}

impl Fixture {
    pub async fn pool(&self, max_connections: u32) -> TenantPool {
        TenantPool::builder()
            .max_connections(max_connections)
            .connect(self.db.app_url())
            .await
            .expect("the fixture passes the audit")
    }

    /// The true number of rows per tenant, as the superuser sees them.
    pub async fn count(&mut self, tenant: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut self.admin)
            .await
            .unwrap()
    }

    /// Application-role backends of this database that are inside a
    /// transaction (or still running something).
    pub async fn app_backends_in_transaction(&mut self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND usename = $1
               AND (state LIKE 'idle in transaction%' OR state = 'active')",
        )
        .bind(APP_ROLE)
        .fetch_one(&mut self.admin)
        .await
        .unwrap()
    }

    /// Waits (bounded) until no application backend is inside a
    /// transaction; returns how many still are. Closing backends take a
    /// moment to leave `pg_stat_activity`, hence the wait.
    pub async fn settle(&mut self, pool: &TenantPool) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let busy = self.app_backends_in_transaction().await;
            let returned = pool.num_idle() as u32 == pool.size();
            if (busy == 0 && returned) || Instant::now() > deadline {
                return busy;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server's clock, to tell a fresh transaction from an old one.
    pub async fn server_now(&mut self) -> String {
        sqlx::query_scalar("SELECT clock_timestamp()::text")
            .fetch_one(&mut self.admin)
            .await
            .unwrap()
    }
}

/// Opens a transaction for `ctx` and counts the notes it sees.
pub async fn notes<S: tenant_core::IsValidated>(
    pool: &TenantPool,
    ctx: &Ctx<S>,
) -> Result<i64, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

pub fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .validate()
        .expect("valid tenant")
}

/// A hardened-mode proof for `tenant`, valid until the Unix time
/// `not_after`, signed with `secret`: what only a holder of the secret can
/// make (the pool makes its own privately).
pub fn proof_with(secret: &[u8], tenant: &str, not_after: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(format!("{not_after}.{tenant}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{not_after}.{hex}")
}

/// [`proof_with`], valid for a minute from now.
pub fn fresh_proof(secret: &[u8], tenant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    proof_with(secret, tenant, now + 60)
}

/// Runs `fut` where an authenticated caller for `tenant` is in scope (a
/// context trusted as a job's would be), as inside a request resolved by a
/// verified token: only there can a validator authorize a context.
pub async fn as_caller<F: Future>(tenant: &str, fut: F) -> F::Output {
    let caller = ctx(tenant).trust("test: the caller authenticated for this tenant");
    tenant_core::Incoming::on_behalf_of(&caller)
        .scope(fut)
        .await
}

/// Polls `fut` at most `polls` times (each poll after a real wake-up), then
/// drops it. `Some` if it finished first.
pub async fn poll_at_most<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    struct Limited<F> {
        fut: Pin<Box<F>>,
        left: usize,
    }
    impl<F: Future> Future for Limited<F> {
        type Output = Option<F::Output>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            match self.fut.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if self.left == 0 => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        }
    }
    Limited {
        fut: Box::pin(fut),
        left: polls,
    }
    .await
}

/// Runs `sql` on a fresh connection to `url` (a migration, or a probe as
/// another role).
pub async fn exec(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

/// A pool that starts in spite of the audit's findings, to show a leak.
pub async fn leaky_pool(fx: &Fixture) -> TenantPool {
    TenantPool::builder()
        .max_connections(2)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .expect("pool")
}

/// The report a strict pool refuses to start with.
pub async fn refused(fx: &Fixture) -> tenant_sqlx::audit::AuditReport {
    let err = TenantPool::builder()
        .connect(fx.db.app_url())
        .await
        .expect_err("the strict pool refuses to start");
    assert!(matches!(err, tenant_sqlx::Error::AuditFailed(_)), "{err}");
    err.audit_report().expect("a report").clone()
}

/// A handler's error in the tests' routers and handlers: a context error
/// (answered as `tenant-core` answers it) or a database error (500, with
/// its code).
#[derive(Debug)]
pub enum AppError {
    Context(tenant_core::ContextError),
    Db(tenant_sqlx::Error),
}

impl From<tenant_core::ContextError> for AppError {
    fn from(e: tenant_core::ContextError) -> Self {
        AppError::Context(e)
    }
}

impl From<tenant_sqlx::Error> for AppError {
    fn from(e: tenant_sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Context(e) => e.code(),
            AppError::Db(e) => e.code(),
        }
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        match self {
            AppError::Context(e) => e.into_response(),
            AppError::Db(e) => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!(r#"{{"error":{{"code":"{}"}}}}"#, e.code()),
            )
                .into_response(),
        }
    }
}

/// Every spelling of hand-written transaction control that a statement run
/// through a `TenantTx` can start with, alone and after another statement
/// in the same message.
pub const BY_HAND: [&str; 23] = [
    "COMMIT",
    "COMMIT AND CHAIN",
    "END",
    "END WORK",
    "ROLLBACK",
    "ROLLBACK AND CHAIN",
    "ABORT",
    "BEGIN",
    "START TRANSACTION",
    "ROLLBACK; BEGIN",
    "ABORT; START TRANSACTION",
    "COMMIT; BEGIN",
    "PREPARE TRANSACTION 'by_hand'",
    "COMMIT PREPARED 'by_hand'",
    "SAVEPOINT by_hand",
    "RELEASE SAVEPOINT by_hand",
    "ROLLBACK TO SAVEPOINT by_hand",
    "SELECT 1; COMMIT",
    "/* a comment */ commit",
    "-- a comment\nROLLBACK",
    // standard_conforming_strings = off would read the string differently.
    "SELECT 'a\\'; COMMIT; --'",
    "SELECT CASE WHEN true THEN 1 END; END",
    // Some PostgreSQL versions count the vertical tab as whitespace.
    "\x0bCOMMIT",
];

/// Runs `statement` by hand in a transaction of `tenant` (which has seed
/// rows), between two inserts. The statement must be refused before it is
/// sent (`TRANSACTION_CONTROL_REFUSED`), by the simple and, for a single
/// statement, the extended protocol; the transaction must be the same one
/// afterwards (same transaction id, tenant still set) and `commit()` must
/// save both inserts, as the superuser sees.
pub async fn transaction_control_is_refused(
    fx: &mut Fixture,
    pool: &TenantPool,
    tenant: &str,
    statement: &str,
) {
    let c = ctx(tenant);
    let slug = format!("by-hand-{}", rand::random::<u64>());
    let mut tx = pool.begin(&c).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'before')")
        .bind(tenant)
        .bind(format!("{slug}-before"))
        .execute(&mut tx)
        .await
        .unwrap();
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    let simple = sqlx::raw_sql(statement).execute(&mut tx).await.unwrap_err();
    let simple = tenant_sqlx::Error::from(simple);
    assert_eq!(
        simple.code(),
        "TRANSACTION_CONTROL_REFUSED",
        "{statement}: {simple}"
    );
    if !statement.contains(';') {
        let extended = sqlx::query(statement).execute(&mut tx).await.unwrap_err();
        let extended = tenant_sqlx::Error::from(extended);
        assert_eq!(
            extended.code(),
            "TRANSACTION_CONTROL_REFUSED",
            "{statement}: {extended}"
        );
    }
    let (same_xid, still, mine): (Option<String>, Option<String>, i64) = sqlx::query_as(
        "SELECT pg_current_xact_id_if_assigned()::text,
                current_setting('app.current_tenant', true),
                (SELECT count(*) FROM notes WHERE slug = $1)",
    )
    .bind(format!("{slug}-before"))
    .fetch_one(&mut tx)
    .await
    .unwrap();
    assert_eq!(
        same_xid.as_deref(),
        Some(xid.as_str()),
        "{statement}: another transaction"
    );
    assert_eq!(still.as_deref(), Some(tenant), "{statement}");
    assert_eq!(mine, 1, "{statement}: the first insert is gone");
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'after')")
        .bind(tenant)
        .bind(format!("{slug}-after"))
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("{statement}: commit failed: {e}"));
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE slug LIKE $1 || '-%'")
        .bind(&slug)
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(
        saved, 2,
        "{statement}: commit() said Ok for rows that are not saved"
    );
}
