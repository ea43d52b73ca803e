//! Events: posting a message publishes `message.created` through the
//! outbox, in the transaction that stores the message; a relay moves it to
//! Redis and a worker keeps `agent_conversation_summaries` (message count,
//! last activity) up to date, each event's effect applied exactly once
//! and only if the outbox holds it for its tenant ([`Job::begin`] proves it
//! and records the event in the effect's transaction).
//!
//! On its throwaway Redis the service gives the relay and the worker Redis
//! ACL users of their own ([`worker::relay_acl`], [`worker::consumer_acl`]):
//! only the relay's may `XADD` into the tenant streams; the worker's reads
//! its group there and writes only the dead-letter stream.

use serde::{Deserialize, Serialize};
use tenant_core::{with_context, Ctx, Validated, WithAgent, WithConversation};
use tenant_sqlx::rls::{quote_ident, RlsPolicy, DEFAULT_POLICY_NAME};
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_testing::redis::TestRedis;
use tenant_testing::HarnessError;
use tenant_worker::{
    self as worker, Job, Relay, Worker, WorkerError, DEFAULT_PREFIX, OUTBOX_TABLE, PROCESSED_TABLE,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The topic of the event a stored message publishes.
pub const MESSAGE_CREATED: &str = "message.created";

/// The summary table the worker maintains.
pub const SUMMARY_TABLE: &str = "agent_conversation_summaries";

/// The worker's consumer group.
pub const SUMMARY_GROUP: &str = "conversation-summaries";

/// The relay's Redis ACL user on the throwaway Redis.
pub const RELAY_REDIS_USER: &str = "outbox-relay";

/// The summary worker's Redis ACL user on the throwaway Redis.
pub const WORKER_REDIS_USER: &str = "summary-worker";

/// The payload of [`MESSAGE_CREATED`]; tenant, agent and conversation
/// travel in the envelope's context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageCreated {
    /// The stored message's id.
    pub message_id: i64,
}

/// The migration of the worker's tables and the summary table (run as the
/// owner; idempotent). `worker_tables_exist`: the outbox is there already,
/// so [`worker::schema_sql`] (whose `CREATE POLICY` is not idempotent) is
/// skipped. In hardened mode the policies read the guard.
pub(crate) fn migration(app_role: &str, hardened: bool, worker_tables_exist: bool) -> String {
    let app = quote_ident(app_role);
    let mut sql = String::new();
    if !worker_tables_exist {
        sql.push_str(&worker::schema_sql(app_role));
    }
    // `schema_sql` writes the ordinary policies; hardened mode needs the
    // guard's condition (ALTER POLICY is idempotent).
    for table in [OUTBOX_TABLE, PROCESSED_TABLE] {
        let condition = RlsPolicy::new(table, "tenant_id")
            .hardened(hardened)
            .condition();
        sql.push_str(&format!(
            "ALTER POLICY {} ON {table} USING ({condition}) WITH CHECK ({condition});\n",
            quote_ident(DEFAULT_POLICY_NAME)
        ));
    }
    sql.push_str(&format!(
        "CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (\n\
         \x20   tenant_id text NOT NULL,\n\
         \x20   agent_id text NOT NULL,\n\
         \x20   conversation_id text NOT NULL,\n\
         \x20   message_count bigint NOT NULL,\n\
         \x20   last_message_id bigint NOT NULL,\n\
         \x20   last_activity timestamptz NOT NULL,\n\
         \x20   PRIMARY KEY (tenant_id, agent_id, conversation_id)\n\
         );\n"
    ));
    sql.push_str(
        &RlsPolicy::new(SUMMARY_TABLE, "tenant_id")
            .hardened(hardened)
            .idempotent_sql(),
    );
    sql.push_str(&format!(
        "GRANT SELECT, INSERT, UPDATE ON {SUMMARY_TABLE} TO {app};\n"
    ));
    sql
}

/// The worker's handler: one more message in the conversation's summary.
/// [`Job::begin`] records the event in the same transaction, so a
/// redelivered event (a crash before `XACK`, a second copy from the relay)
/// counts once.
#[with_context(tenant, agent, conversation)]
async fn summarize(
    job: Job<MessageCreated>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
) -> Result<(), WorkerError> {
    let mut tx = job.begin(&ctx).await?;
    // The message's own time (it may have been deleted since: then now).
    sqlx::query(&format!(
        "INSERT INTO {SUMMARY_TABLE} AS s \
             (tenant_id, agent_id, conversation_id, message_count, last_message_id, last_activity) \
         VALUES ($1, $2, $3, 1, $4, COALESCE( \
             (SELECT created_at FROM tenant_memory_messages WHERE id = $4), clock_timestamp())) \
         ON CONFLICT (tenant_id, agent_id, conversation_id) DO UPDATE SET \
             message_count = s.message_count + 1, \
             last_message_id = GREATEST(s.last_message_id, EXCLUDED.last_message_id), \
             last_activity = GREATEST(s.last_activity, EXCLUDED.last_activity)"
    ))
    .bind(ctx.tenant_id().as_str())
    .bind(ctx.agent_id().as_str())
    .bind(ctx.conversation_id().as_str())
    .bind(job.payload().message_id)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Where the events go: the relay and the worker, as tasks of this process.
#[derive(Debug)]
pub(crate) struct Events {
    // Field order matters: the tasks stop before Redis goes away.
    stop: watch::Sender<bool>,
    relay: JoinHandle<()>,
    worker: JoinHandle<()>,
    redis: Option<TestRedis>,
}

/// Creates ACL user `user` on `redis` with a made-up password and the
/// rules `acl` gives for the default prefix; returns the URL that logs in
/// as it.
async fn redis_user(
    redis: &TestRedis,
    user: &str,
    acl: fn(&str) -> Vec<String>,
) -> Result<String, crate::StartError> {
    let password: String = crate::auth::made_up_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut rules = vec!["on".to_owned(), format!(">{password}")];
    rules.extend(acl(DEFAULT_PREFIX));
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    redis
        .acl_setuser(user, &rules)
        .await
        .map_err(crate::StartError::Redis)?;
    Ok(redis.url_as(user, &password))
}

/// A future that completes when `stop` says so.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Events {
    /// Starts Redis (`redis_url`, else a throwaway one with an ACL user for
    /// the relay and one for the worker), the relay (reading the outbox
    /// through `relay_url`, a role that bypasses RLS) and the worker.
    pub(crate) async fn start(
        pool: &TenantPool,
        relay_url: &str,
        redis_url: Option<&str>,
    ) -> Result<Events, crate::StartError> {
        let (redis, relay_redis, worker_redis) = match redis_url {
            Some(url) => (None, url.to_owned(), url.to_owned()),
            None => {
                let redis = TestRedis::start().await.map_err(|e| match e {
                    HarnessError::BinariesMissing { .. } => crate::StartError::RedisMissing,
                    e => crate::StartError::Redis(e),
                })?;
                let relay = redis_user(&redis, RELAY_REDIS_USER, worker::relay_acl).await?;
                let worker = redis_user(&redis, WORKER_REDIS_USER, worker::consumer_acl).await?;
                (Some(redis), relay, worker)
            }
        };
        let open = |url: &str| {
            redis::Client::open(url).map_err(|e| crate::StartError::Events(WorkerError::from(e)))
        };
        let admin = AdminPool::connect(relay_url).await?;
        let relay = Relay::builder()
            .start(&admin, &open(&relay_redis)?)
            .await
            .map_err(crate::StartError::Events)?;
        let worker = Worker::builder(SUMMARY_GROUP)
            .start(pool.clone(), &open(&worker_redis)?)
            .await
            .map_err(crate::StartError::Events)?;
        let (stop, rx) = watch::channel(false);
        let relay = tokio::spawn(relay.run(stopped(rx.clone())));
        let worker = tokio::spawn(async move {
            if let Err(e) = worker.run(summarize, stopped(rx)).await {
                tracing::error!(code = e.code(), error = %e, "the summary worker stopped");
            }
        });
        Ok(Events {
            stop,
            relay,
            worker,
            redis,
        })
    }

    /// Where the events go, in words.
    pub(crate) fn describe(&self) -> String {
        match &self.redis {
            Some(redis) => format!(
                "a throwaway Redis in {} (removed on exit)",
                redis.dir().display()
            ),
            None => "the Redis in REDIS_URL".to_owned(),
        }
    }

    /// Stops the relay and the worker (jobs in flight finish), then the
    /// throwaway Redis, if any.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.relay.await;
        let _ = self.worker.await;
        drop(self.redis);
    }
}
