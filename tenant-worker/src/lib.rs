//! Workers on Redis Streams for tenant-scoped services: events that carry their
//! tenant, published through a transactional outbox and applied exactly once.
//!
//! The pipeline has three parts:
//!
//! 1. **Outbox.** [`publish`] writes an event into `tenant_outbox` inside the
//!    caller's [`TenantTx`](tenant_sqlx::TenantTx), under RLS, wrapped in an
//!    [`Envelope`](tenant_core::envelope::Envelope) carrying the
//!    transaction's context. It exists only if the business write commits.
//! 2. **Relay.** [`Relay`] moves committed outbox rows to Redis (`XADD`), one
//!    stream per tenant (`{prefix}:t:{tenant}`), in outbox order, then marks
//!    them published. Delivery is at least once: a relay that dies between
//!    the `XADD` and its commit publishes the event again, under the same
//!    event id.
//! 3. **Consumer.** [`Worker`] reads the tenant streams through a consumer
//!    group (`XREADGROUP`), validates each envelope (a missing or invalid
//!    context, an oversized or undecodable payload, or a tenant that is not
//!    the stream's goes to the dead-letter stream with its reason: never to a
//!    default tenant), and runs the handler inside the envelope's
//!    [`Incoming`](tenant_core::Incoming) scope, so `#[with_context(tenant,
//!    …)]` works on worker handlers as on HTTP ones. An entry is applied only
//!    if it is genuine: [`Job::begin`] opens the event's tenant transaction
//!    *and, in one statement in it, proves that the outbox holds this event
//!    id for this tenant with this topic and envelope (read under RLS) and
//!    records it in `tenant_processed_messages`*, keyed by tenant, consumer
//!    group and event id. A forged entry (a consistent envelope that no
//!    transaction wrote) is dead-lettered `EVENT_NOT_IN_OUTBOX`; the effect
//!    and the record commit together, so an event redelivered after a crash
//!    (between the commit and the `XACK`, or a second copy from the relay)
//!    is acknowledged without a second effect, and no tenant can claim
//!    another tenant's event id. By default the worker also checks the
//!    outbox before calling the handler
//!    ([`WorkerBuilder::check_before_handler`]), so a handler never sees a
//!    forged event. Ids other than `1..=i64::MAX` in canonical decimal are
//!    dead-lettered `EVENT_ID_INVALID`. Pending messages of a dead consumer are reclaimed with
//!    `XAUTOCLAIM` after the visibility timeout; failed handlers are retried
//!    with exponential backoff, then dead-lettered; at most
//!    [`WorkerBuilder::per_tenant_in_flight`] jobs of one tenant run at once,
//!    so a flooding tenant cannot starve the others.
//!
//! The SQL for both tables, with policies that pass this crate's
//! [`audit`](tenant_sqlx::audit), is [`schema_sql`]. [`prune`] (or
//! [`RelayBuilder::retention`]) deletes published events and processed
//! records past a retention window without weakening the proof.
//! [`relay_acl`] and [`consumer_acl`] write the Redis ACL rules that keep a
//! consumer from writing into the tenant streams.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tenant_core::{with_context, Ctx, Validated};
//! use tenant_worker::{self as worker, Job, Relay, Worker, WorkerError};
//! use tenant_sqlx::{AdminPool, TenantPool};
//!
//! #[derive(Serialize, Deserialize)]
//! struct NoteCreated { note_id: i64 }
//!
//! // The producer: the event commits with the note, or not at all.
//! async fn create_note(pool: &TenantPool, ctx: &Ctx<Validated>) -> Result<(), WorkerError> {
//!     let mut tx = pool.begin(ctx).await?;
//!     let id: i64 = sqlx::query_scalar("INSERT INTO notes (tenant_id, body) VALUES ($1, 'hi') RETURNING id")
//!         .bind(ctx.tenant_id().as_str())
//!         .fetch_one(&mut tx)
//!         .await?;
//!     worker::publish(&mut tx, "note.created", &NoteCreated { note_id: id }).await?;
//!     tx.commit().await?;
//!     Ok(())
//! }
//!
//! // The handler: the context comes from the envelope, validated.
//! #[with_context(tenant)]
//! async fn on_note(job: Job<NoteCreated>, ctx: Ctx<Validated>) -> Result<(), WorkerError> {
//!     let mut tx = job.begin(&ctx).await?; // records the event id in this transaction
//!     sqlx::query("UPDATE note_stats SET created = created + 1 WHERE tenant_id = $1")
//!         .bind(ctx.tenant_id().as_str())
//!         .execute(&mut tx)
//!         .await?;
//!     tx.commit().await?;
//!     Ok(())
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = redis::Client::open("redis://127.0.0.1/")?;
//! let pool = TenantPool::connect("postgres://app@localhost/app").await?;
//! // The relay reads every tenant's outbox: an explicit, logged admin path
//! // (a role with BYPASSRLS).
//! let admin = AdminPool::connect("postgres://relay@localhost/app").await?;
//! let relay = Relay::builder().start(&admin, &redis).await?;
//! let worker = Worker::builder("notes").start(pool, &redis).await?;
//! let shutdown = std::future::pending::<()>(); // e.g. tokio::signal::ctrl_c()
//! tokio::spawn(relay.run(std::future::pending()));
//! worker.run(on_note, shutdown).await?; // finishes the jobs in flight
//! # Ok(()) }
//! ```

mod acl;
mod consumer;
mod error;
mod outbox;
mod prune;
mod relay;
mod schema;

pub use acl::{consumer_acl, relay_acl};
pub use consumer::{Job, Worker, WorkerBuilder, WorkerStats};
pub use error::{DeadLetterReason, WorkerError};
pub use outbox::publish;
pub use prune::{prune, Pruned};
pub use relay::{Relay, RelayBuilder};
pub use schema::{schema_sql, OUTBOX_TABLE, PROCESSED_TABLE};

/// The key prefix of the streams unless configured: tenant streams are
/// `tenant:events:t:{tenant}`, the set of tenants `tenant:events:tenants`,
/// the dead letters `tenant:events:dead`.
pub const DEFAULT_PREFIX: &str = "tenant:events";

/// The Redis keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }
    pub(crate) fn stream(&self, tenant: &str) -> String {
        format!("{}:t:{tenant}", self.prefix)
    }
    pub(crate) fn tenant_of<'k>(&self, stream: &'k str) -> Option<&'k str> {
        stream
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(":t:"))
    }
    pub(crate) fn tenants(&self) -> String {
        format!("{}:tenants", self.prefix)
    }
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }
}

/// The fields of a stream entry written by the relay.
pub(crate) mod field {
    pub(crate) const EVENT: &str = "event";
    pub(crate) const TOPIC: &str = "topic";
    pub(crate) const ENVELOPE: &str = "envelope";
}
