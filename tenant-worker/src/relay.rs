use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::schema::OUTBOX_TABLE;
use super::{field, Keys, WorkerError, DEFAULT_PREFIX};
use tenant_sqlx::{AdminConn, AdminPool};

/// What the relay's admin connection is logged with.
const REASON: &str = "outbox relay: publish committed events of every tenant";

/// Moves committed outbox rows to the tenant streams; see the
/// [module documentation](super).
///
/// One relay publishes at a time (a transaction-scoped advisory lock), in
/// outbox order, so the events of one tenant reach its stream in the order
/// their rows were written. Several relays may run for availability: the
/// others wait.
pub struct Relay {
    admin: AdminPool,
    conn: Option<AdminConn>,
    redis: ConnectionManager,
    keys: Keys,
    batch: i64,
    idle: Duration,
    retention: Option<Duration>,
    after_publish: Option<Hook>,
}

type Hook = Arc<dyn Fn() + Send + Sync>;

/// Options of a [`Relay`].
///
/// ```
/// let builder = tenant_worker::Relay::builder().batch(500);
/// # let _ = builder;
/// ```
#[derive(Clone)]
pub struct RelayBuilder {
    prefix: String,
    batch: i64,
    idle: Duration,
    retention: Option<Duration>,
    after_publish: Option<Hook>,
}

impl fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("prefix", &self.prefix)
            .field("batch", &self.batch)
            .field("idle", &self.idle)
            .field("retention", &self.retention)
            .finish()
    }
}

impl Default for RelayBuilder {
    fn default() -> Self {
        RelayBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            batch: 256,
            idle: Duration::from_millis(20),
            retention: None,
            after_publish: None,
        }
    }
}

impl RelayBuilder {
    /// The stream key prefix ([`DEFAULT_PREFIX`] by default); the workers
    /// must use the same.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// At most this many events per round (256 by default).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = i64::from(batch.max(1));
        self
    }

    /// How long [`Relay::run`] sleeps when the outbox is empty (20 ms).
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Makes [`Relay::run`] [`prune`](super::prune) the outbox and the
    /// processed records with this retention, at start and then every
    /// minute (or every `retention`, if shorter). Without it (the default)
    /// nothing is deleted.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Fault injection for crash tests: `hook` runs after a batch is on
    /// Redis and before its rows are marked published (the window in which
    /// a crash publishes the batch twice).
    #[doc(hidden)]
    pub fn after_publish(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.after_publish = Some(Arc::new(hook));
        self
    }

    /// A relay reading the outbox through `admin` (a role that bypasses
    /// RLS: it reads every tenant's events) and writing to `redis`.
    pub async fn start(
        self,
        admin: &AdminPool,
        redis: &redis::Client,
    ) -> Result<Relay, WorkerError> {
        let redis = ConnectionManager::new(redis.clone()).await?;
        Ok(Relay {
            admin: admin.clone(),
            conn: None,
            redis,
            keys: Keys::new(&self.prefix),
            batch: self.batch,
            idle: self.idle,
            retention: self.retention,
            after_publish: self.after_publish,
        })
    }
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("keys", &self.keys)
            .field("batch", &self.batch)
            .finish()
    }
}

impl Relay {
    /// Options.
    pub fn builder() -> RelayBuilder {
        RelayBuilder::default()
    }

    /// Publishes up to one batch of committed, unpublished events; returns
    /// how many. `0` when the outbox is empty or another relay holds the
    /// lock.
    pub async fn run_once(&mut self) -> Result<usize, WorkerError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.admin.acquire(REASON).await?,
        };
        let published = self.round(&mut conn).await?;
        // Kept only after a clean round: on error the connection may be
        // broken or mid-transaction, and an AdminConn is closed, not pooled,
        // when dropped.
        self.conn = Some(conn);
        Ok(published)
    }

    // `sqlx::query`, not `raw_sql`: the future of `raw_sql(..).execute` on
    // a `&mut AdminConn` is not provably `Send` for every lifetime, and
    // `run` must be spawnable.
    async fn round(&mut self, conn: &mut AdminConn) -> Result<usize, WorkerError> {
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('tenant_outbox_relay'))")
                .fetch_one(&mut *conn)
                .await?;
        if !locked {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            return Ok(0);
        }
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(&format!(
            "SELECT id, tenant_id, topic, envelope FROM {OUTBOX_TABLE}
             WHERE published_at IS NULL ORDER BY id, tenant_id LIMIT $1"
        ))
        .bind(self.batch)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        let mut tenants: Vec<String> = Vec::new();
        for (id, tenant, topic, envelope) in &rows {
            pipe.cmd("XADD")
                .arg(self.keys.stream(tenant))
                .arg("*")
                .arg(field::EVENT)
                .arg(*id)
                .arg(field::TOPIC)
                .arg(topic)
                .arg(field::ENVELOPE)
                .arg(envelope)
                .ignore();
            if !tenants.contains(tenant) {
                tenants.push(tenant.clone());
            }
        }
        pipe.cmd("SADD")
            .arg(self.keys.tenants())
            .arg(&tenants)
            .ignore();
        // Published before the rows are marked: a crash in between publishes
        // them again (at least once), under the same event ids, which the
        // consumers' processed table absorbs.
        pipe.query_async::<()>(&mut self.redis).await?;
        if let Some(hook) = &self.after_publish {
            hook();
        }
        // By (tenant, id): ids are unique per tenant only (SQL may write
        // an explicit id), so marking by id alone could mark another
        // tenant's row that this batch did not publish.
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let owners: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        sqlx::query(&format!(
            "UPDATE {OUTBOX_TABLE} o SET published_at = now()
               FROM unnest($1::text[], $2::bigint[]) AS b(tenant_id, id)
              WHERE o.tenant_id = b.tenant_id AND o.id = b.id AND o.published_at IS NULL"
        ))
        .bind(&owners)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok(rows.len())
    }

    /// Runs [`run_once`](Self::run_once) until `shutdown` completes, sleeping
    /// when there is nothing to publish and backing off on errors (logged at
    /// `WARN`, target `tenant_worker`); prunes when
    /// [`RelayBuilder::retention`] says so.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        let mut pruned: Option<Instant> = None;
        loop {
            if let Some(retention) = self.retention {
                let every = retention.min(Duration::from_secs(60));
                if pruned.is_none_or(|t| t.elapsed() >= every) {
                    pruned = Some(Instant::now());
                    match super::prune(&self.admin, retention).await {
                        Ok(p) => {
                            tracing::debug!(target: "tenant_worker", outbox = p.outbox, processed = p.processed, "pruned")
                        }
                        Err(e) => {
                            tracing::warn!(target: "tenant_worker", code = e.code(), error = %e, "outbox prune failed")
                        }
                    }
                }
            }
            let pause = match self.run_once().await {
                Ok(n) if n > 0 => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(_) => {
                    failures = 0;
                    self.idle
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(target: "tenant_worker", code = e.code(), error = %e, "outbox relay round failed");
                    backoff(failures, Duration::from_millis(20), Duration::from_secs(2))
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// `base * 2^(attempt-1)`, capped.
pub(crate) fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(cap)
}
