//! [`AdminPool`]: the explicit, logged way around tenant isolation.

use std::fmt;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::Error;

/// A separate pool for migrations, health checks and deliberate
/// cross-tenant jobs.
///
/// It is built from its own URL at start-up and handed
/// only to the code that needs it; nothing in this crate makes one from a
/// `Ctx` or a [`TenantPool`](crate::TenantPool). Every use names a reason,
/// logged at `INFO` with target `tenant_sqlx::admin`.
///
/// Which role to connect as depends on the job: the table owner runs
/// migrations, but with `FORCE ROW LEVEL SECURITY` it sees no rows without a
/// tenant, so a cross-tenant job needs a role with `BYPASSRLS` (never the
/// role of the [`TenantPool`](crate::TenantPool): the audit refuses that).
///
/// Each [`AdminConn`] is closed when dropped rather than returned to the
/// pool: admin work is rare, and a fresh connection guarantees that nothing
/// it left behind (a session setting, an interrupted transaction) reaches the
/// next use.
///
/// ```no_run
/// use tenant_sqlx::AdminPool;
///
/// # async fn demo() -> Result<(), tenant_sqlx::Error> {
/// let admin = AdminPool::connect("postgres://owner@localhost/app").await?;
/// let mut conn = admin.acquire("migrate: create notes").await?;
/// sqlx::raw_sql("CREATE TABLE IF NOT EXISTS notes (id bigserial, tenant_id text NOT NULL, body text)")
///     .execute(&mut conn)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AdminPool {
    pool: PgPool,
}

impl fmt::Debug for AdminPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminPool")
            .field("size", &self.pool.size())
            .finish()
    }
}

impl AdminPool {
    /// Connects to `url` (at most 4 admin connections at a time).
    pub async fn connect(url: &str) -> Result<AdminPool, Error> {
        let options: PgConnectOptions = url.parse()?;
        Self::connect_with(options).await
    }

    /// Connects with `options` (at most 4 admin connections at a time).
    pub async fn connect_with(options: PgConnectOptions) -> Result<AdminPool, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(AdminPool { pool })
    }

    /// A connection for `reason`, logged at `INFO`. The reason must say why
    /// tenant isolation is bypassed (`"migrate"`, `"health check"`,
    /// `"nightly usage report across tenants"`); an empty one is refused.
    pub async fn acquire(&self, reason: &str) -> Result<AdminConn, Error> {
        if reason.trim().is_empty() {
            return Err(Error::AdminReasonRequired);
        }
        let conn = self.pool.acquire().await?;
        tracing::info!(target: "tenant_sqlx::admin", reason, "admin connection acquired");
        Ok(AdminConn {
            conn,
            reason: reason.to_owned(),
            since: Instant::now(),
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// A connection from an [`AdminPool`], with no tenant and no isolation.
///
/// Run queries on `&mut conn` (an sqlx executor). Like a
/// [`TenantTx`](crate::TenantTx), it never hands out the `PgConnection` itself, so its
/// session cannot be swapped into anything else. Closed when dropped.
pub struct AdminConn {
    conn: PoolConnection<Postgres>,
    reason: String,
    since: Instant,
}

impl AdminConn {
    /// The reason given to [`AdminPool::acquire`].
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Drop for AdminConn {
    fn drop(&mut self) {
        self.conn.close_on_drop();
        tracing::debug!(
            target: "tenant_sqlx::admin",
            reason = %self.reason,
            held_ms = self.since.elapsed().as_millis() as u64,
            "admin connection released"
        );
    }
}

impl fmt::Debug for AdminConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConn")
            .field("reason", &self.reason)
            .finish()
    }
}

impl crate::executor::Session for AdminConn {
    fn session(&mut self, _sql: &str) -> Result<&mut PgConnection, sqlx::Error> {
        Ok(&mut self.conn)
    }
}

forward_executor!(AdminConn);
