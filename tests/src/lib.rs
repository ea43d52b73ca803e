//! Integration tests against a real PostgreSQL (and Redis) live in
//! `tests/`; this library holds the worker fixture they share with the
//! `worker-proc` binary that the crash tests kill.

#[cfg(doctest)]
pub mod readme;

pub mod worker_fixture {
    //! The worker tests' schema, producer and handlers.
    //!
    //! An event's effect is one row in `effects` carrying the event id and
    //! the tenant the handler's transaction ran for; exactly once means one
    //! row per event, in the event's own tenant.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};
    use sqlx::{Connection, PgConnection};
    use tenant_core::{with_context, Ctx, Validated};
    use tenant_sqlx::rls::RlsPolicy;
    use tenant_sqlx::TenantPool;
    use tenant_testing::{TestDatabase, APP_ROLE};
    use tenant_worker::{self as worker, Job, Worker, WorkerError, WorkerStats};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// The consumer group of the tests.
    pub const GROUP: &str = "effects";

    /// The payload of a test event.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Effect {
        /// The tenant the producer wrote it for (to check the consumer's).
        pub tenant: String,
        /// The producer's sequence number within its tenant.
        pub seq: i64,
    }

    /// Creates the worker tables and `effects` as the owner.
    pub async fn install(db: &TestDatabase) {
        let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
        let sql = format!(
            "{}
             CREATE TABLE effects (
                 id bigserial NOT NULL,
                 tenant_id text NOT NULL,
                 event_id bigint NOT NULL,
                 payload_tenant text NOT NULL,
                 seq bigint NOT NULL,
                 PRIMARY KEY (tenant_id, id)
             );
             GRANT USAGE ON SEQUENCE effects_id_seq TO {APP_ROLE};
             {}",
            worker::schema_sql(APP_ROLE),
            RlsPolicy::new("effects", "tenant_id")
                .grant_to(APP_ROLE)
                .sql()
        );
        sqlx::raw_sql(&sql).execute(&mut owner).await.unwrap();
        owner.close().await.unwrap();
    }

    /// The name of tenant `i`.
    pub fn tenant(i: usize) -> String {
        format!("tenant-{i:03}")
    }

    /// Publishes `per_tx` events of `tenant` (sequence numbers from `first`)
    /// through the outbox in one transaction.
    pub async fn produce(pool: &TenantPool, tenant: &str, first: i64, per_tx: i64) {
        let ctx: Ctx<Validated> = Ctx::unvalidated()
            .with_tenant(tenant)
            .with_agent("producer")
            .validate()
            .unwrap();
        let mut tx = pool.begin(&ctx).await.unwrap();
        for seq in first..first + per_tx {
            let effect = Effect {
                tenant: tenant.to_owned(),
                seq,
            };
            worker::publish(&mut tx, "effect", &effect).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Where a handler may crash (the crash tests' schedule).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CrashAt {
        /// After the effect's INSERT, before the COMMIT.
        BeforeCommit,
        /// After the COMMIT, before the handler returns (so before `XACK`).
        AfterCommit,
    }

    /// Decides, per handled event, whether to crash and where.
    pub type CrashPlan = Arc<dyn Fn(u64) -> Option<CrashAt> + Send + Sync>;

    /// Handler state: the pool (for both patterns), Redis (the
    /// check-then-set pattern's dedup keys), the crash plan.
    #[derive(Clone)]
    pub struct Handlers {
        /// The application pool.
        pub pool: TenantPool,
        /// Redis, for the check-then-set pattern's `EXISTS`/`SET`.
        pub redis: redis::aio::ConnectionManager,
        /// When to crash.
        pub crash: CrashPlan,
        /// Events handled so far in this process.
        pub handled: Arc<AtomicU64>,
        /// Called with the crash point just before the process kills itself.
        pub on_crash: Arc<dyn Fn(CrashAt) + Send + Sync>,
    }

    impl std::fmt::Debug for Handlers {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Handlers").finish_non_exhaustive()
        }
    }

    impl Handlers {
        fn crash_point(&self) -> Option<CrashAt> {
            let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
            (self.crash)(n)
        }

        fn die(&self, at: CrashAt) {
            (self.on_crash)(at);
            kill_self();
        }

        /// Ours: the effect and the processed record in one transaction.
        #[with_context(tenant, agent)]
        pub async fn exactly_once(
            &self,
            job: Job<Effect>,
            ctx: Ctx<Validated<tenant_core::WithAgent>>,
        ) -> Result<(), WorkerError> {
            let crash = self.crash_point();
            let mut tx = job.begin(&ctx).await?;
            insert_effect(&mut tx, &job).await?;
            if crash == Some(CrashAt::BeforeCommit) {
                self.die(CrashAt::BeforeCommit);
            }
            tx.commit().await?;
            if crash == Some(CrashAt::AfterCommit) {
                self.die(CrashAt::AfterCommit);
            }
            Ok(())
        }

        /// The common check-then-set pattern: `EXISTS processed:{id}`, the
        /// work, then `SET processed:{id}` (applied twice if the process dies
        /// between the work and the `SET`).
        #[with_context(tenant, agent)]
        pub async fn check_then_set(
            &self,
            job: Job<Effect>,
            ctx: Ctx<Validated<tenant_core::WithAgent>>,
        ) -> Result<(), WorkerError> {
            let crash = self.crash_point();
            let key = format!("processed:{}", job.event_id());
            let mut redis = self.redis.clone();
            let seen: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut redis)
                .await?;
            if seen {
                return Ok(());
            }
            let mut tx = self.pool.begin(&ctx).await?;
            insert_effect(&mut tx, &job).await?;
            if crash == Some(CrashAt::BeforeCommit) {
                self.die(CrashAt::BeforeCommit);
            }
            tx.commit().await?;
            if crash == Some(CrashAt::AfterCommit) {
                self.die(CrashAt::AfterCommit);
            }
            redis::cmd("SET")
                .arg(&key)
                .arg("1")
                .arg("EX")
                .arg(7 * 86400)
                .query_async::<()>(&mut redis)
                .await?;
            Ok(())
        }
    }

    async fn insert_effect(
        tx: &mut tenant_sqlx::TenantTx<'_>,
        job: &Job<Effect>,
    ) -> Result<(), WorkerError> {
        let tenant = tx.tenant_id().as_str().to_owned();
        sqlx::query(
            "INSERT INTO effects (tenant_id, event_id, payload_tenant, seq) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(job.event_id())
        .bind(&job.payload().tenant)
        .bind(job.payload().seq)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// `kill -9` of this process: no destructor, no flush, as a crash.
    pub fn kill_self() -> ! {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        // `kill` returns only once the signal is delivered; just in case.
        std::process::abort()
    }

    /// What the superuser sees of the effects: (rows, distinct events, rows
    /// whose tenant is not the event's outbox tenant, rows whose tenant is
    /// not the payload's).
    pub async fn audit_effects(admin: &mut PgConnection) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM effects),
                    (SELECT count(DISTINCT event_id) FROM effects),
                    (SELECT count(*) FROM effects e JOIN tenant_outbox o ON o.id = e.event_id
                      WHERE o.tenant_id <> e.tenant_id),
                    (SELECT count(*) FROM effects WHERE payload_tenant <> tenant_id)",
        )
        .fetch_one(admin)
        .await
        .unwrap()
    }

    /// A worker running on a task of its own until [`Running::stop`].
    #[derive(Debug)]
    pub struct Running {
        stop: oneshot::Sender<()>,
        task: JoinHandle<Result<WorkerStats, WorkerError>>,
    }

    /// Runs `worker` with `handler` on a spawned task.
    pub fn spawn<T, H, Fut>(worker: Worker, handler: H) -> Running
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        H: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), WorkerError>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(handler, async move {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    impl Running {
        /// Shuts the worker down gracefully and gives its statistics.
        pub async fn stop(self) -> Result<WorkerStats, WorkerError> {
            let _ = self.stop.send(());
            self.task.await.expect("the worker task panicked")
        }
    }
}
