use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde::de::DeserializeOwned;
use tenant_core::envelope::Envelope;
use tenant_core::{Ctx, Incoming, IsValidated, Validated, Validator};
use tokio::task::JoinSet;

use super::outbox::{claim, parse_event_id, standing, Entry, Standing};
use super::relay::backoff;
use super::{field, DeadLetterReason, Keys, WorkerError, DEFAULT_PREFIX};
use tenant_sqlx::{TenantPool, TenantTx};

/// How much of a dead message's envelope is copied into the dead-letter
/// entry.
const DEAD_ENVELOPE_KEEP: usize = 4096;

/// One event handed to a handler: its payload, ids, and the way to its
/// tenant's transaction.
pub struct Job<T> {
    payload: T,
    event_id: i64,
    message_id: String,
    topic: String,
    envelope: Arc<str>,
    tenant: String,
    attempt: u32,
    pool: TenantPool,
    group: Arc<str>,
}

impl<T: fmt::Debug> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("event_id", &self.event_id)
            .field("message_id", &self.message_id)
            .field("topic", &self.topic)
            .field("tenant", &self.tenant)
            .field("attempt", &self.attempt)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<T> Job<T> {
    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The event id (the outbox row's id): the same for every copy of the
    /// event the relay may have published.
    pub fn event_id(&self) -> i64 {
        self.event_id
    }

    /// The stream entry id of this delivery.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The topic the producer published under.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// 1 for the first attempt in this worker, 2 for the first retry, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Opens the event's tenant transaction for `ctx`, proves in it that the
    /// outbox holds this event (this id, for this tenant, with this topic
    /// and envelope) and records the event in it
    /// (`tenant_processed_messages`, keyed by tenant, consumer group and
    /// event id), in one statement: the effect and the record commit
    /// together, or neither does.
    ///
    /// Fails with [`WorkerError::NotInOutbox`] when the outbox holds no such
    /// event (a forged stream entry: the worker dead-letters it), with
    /// [`WorkerError::AlreadyProcessed`] when the event's effect already
    /// committed (a redelivery: the worker acknowledges it), and with
    /// [`WorkerError::TenantMismatch`] when `ctx` is not the event's tenant.
    /// A concurrent attempt at the same event waits for the first to commit
    /// or roll back.
    pub async fn begin<'c, S: IsValidated>(
        &self,
        ctx: &'c Ctx<S>,
    ) -> Result<TenantTx<'c>, WorkerError> {
        if ctx.tenant_id().as_str() != self.tenant {
            return Err(WorkerError::TenantMismatch);
        }
        let mut tx = self.pool.begin(ctx).await?;
        let entry = Entry {
            tenant: &self.tenant,
            event_id: self.event_id,
            topic: &self.topic,
            envelope: &self.envelope,
        };
        match claim(&mut tx, &self.group, entry).await {
            Ok(()) => Ok(tx),
            Err(e) => {
                // The claim's error says what happened; a failed rollback
                // only closes the connection.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// Counts kept by a running [`Worker`], returned by [`Worker::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Events whose handler succeeded.
    pub processed: u64,
    /// Deliveries of events already processed, acknowledged without effect.
    pub duplicates: u64,
    /// Messages sent to the dead-letter stream.
    pub dead_lettered: u64,
    /// Handler attempts that failed and were retried.
    pub retries: u64,
    /// Messages reclaimed from other consumers (`XAUTOCLAIM`).
    pub reclaimed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    retries: AtomicU64,
    reclaimed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            processed: self.processed.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
        }
    }
}

/// Options of a [`Worker`].
///
/// ```
/// use std::time::Duration;
/// let builder = tenant_worker::Worker::builder("summaries")
///     .max_in_flight(8)
///     .per_tenant_in_flight(2)
///     .visibility_timeout(Duration::from_secs(30))
///     .max_attempts(5);
/// # let _ = builder;
/// ```
#[derive(Clone)]
pub struct WorkerBuilder {
    group: String,
    consumer: Option<String>,
    prefix: String,
    max_in_flight: usize,
    per_tenant: usize,
    visibility: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    max_envelope_bytes: usize,
    idle: Duration,
    validator: Option<Arc<dyn Validator>>,
    check_before_handler: bool,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("prefix", &self.prefix)
            .field("max_in_flight", &self.max_in_flight)
            .field("per_tenant_in_flight", &self.per_tenant)
            .field("visibility_timeout", &self.visibility)
            .field("max_attempts", &self.max_attempts)
            .field("validator", &self.validator.is_some())
            .field("check_before_handler", &self.check_before_handler)
            .finish()
    }
}

impl WorkerBuilder {
    /// The consumer name (unique per worker; by default the process id and
    /// a clock salt).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// The stream key prefix ([`DEFAULT_PREFIX`]); the relay's.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// At most `n` jobs in flight in this worker (16 by default).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// At most `n` jobs of one tenant in flight in this worker (2 by
    /// default): the fairness bound.
    pub fn per_tenant_in_flight(mut self, n: usize) -> Self {
        self.per_tenant = n.max(1);
        self
    }

    /// How long a delivered message may stay unacknowledged before another
    /// consumer reclaims it (30 s by default).
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility = d.max(Duration::from_millis(10));
        self
    }

    /// Attempts before a failing message is dead-lettered (5 by default).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first retry's delay, doubled for each further one up to `cap`
    /// (50 ms and 5 s by default). Keep the sum well under the visibility
    /// timeout.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// Envelopes larger than this are dead-lettered unread (256 KiB).
    pub fn max_envelope_bytes(mut self, n: usize) -> Self {
        self.max_envelope_bytes = n;
        self
    }

    /// The application's check of every context, run before the handler;
    /// a refusal dead-letters the message with the validator's code.
    pub fn validator(mut self, validator: Arc<dyn Validator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Whether the worker proves that the outbox holds each event before it
    /// calls the handler, in a short transaction of the event's tenant
    /// (`true` by default): a forged entry is then dead-lettered
    /// (`EVENT_NOT_IN_OUTBOX`) and a processed one acknowledged without the
    /// handler ever seeing it.
    ///
    /// [`Job::begin`] proves it again in the effect's own transaction
    /// either way; that proof alone suffices for a handler whose every
    /// effect is written in that transaction, which may turn this off to
    /// save one transaction per event. A handler with any other effect (a
    /// mail, a call, a file) needs it on.
    pub fn check_before_handler(mut self, check: bool) -> Self {
        self.check_before_handler = check;
        self
    }

    /// A worker of consumer group `group` (created on each tenant stream if
    /// missing, from the stream's beginning), with `pool` for the handlers'
    /// transactions.
    pub async fn start(
        self,
        pool: TenantPool,
        redis: &redis::Client,
    ) -> Result<Worker, WorkerError> {
        let reader = ConnectionManager::new(redis.clone()).await?;
        let acker = ConnectionManager::new(redis.clone()).await?;
        let consumer = self.consumer.clone().unwrap_or_else(|| {
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            format!("worker-{}-{salt:x}", std::process::id())
        });
        Ok(Worker {
            pool,
            reader,
            shared: Arc::new(Shared {
                keys: Keys::new(&self.prefix),
                group: self.group.as_str().into(),
                consumer,
                acker,
                counters: Counters::default(),
                config: self,
            }),
        })
    }
}

/// A consumer of the tenant streams; see the [module documentation](super).
pub struct Worker {
    pool: TenantPool,
    reader: ConnectionManager,
    shared: Arc<Shared>,
}

struct Shared {
    keys: Keys,
    group: Arc<str>,
    consumer: String,
    acker: ConnectionManager,
    counters: Counters,
    config: WorkerBuilder,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.shared.consumer)
            .field("config", &self.shared.config)
            .finish()
    }
}

/// What became of one delivery.
enum Outcome {
    Done,
    Duplicate,
    Dead(DeadLetterReason, String),
}

impl Worker {
    /// Options for a worker of consumer group `group`.
    pub fn builder(group: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            group: group.into(),
            consumer: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            max_in_flight: 16,
            per_tenant: 2,
            visibility: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(5),
            max_envelope_bytes: 256 * 1024,
            idle: Duration::from_millis(10),
            validator: None,
            check_before_handler: true,
        }
    }

    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// Consumes until `shutdown` completes, then stops reading, lets the
    /// jobs in flight finish (their retries included) and returns the
    /// counts. Redis and database errors of the read loop are logged and
    /// retried with backoff, never returned: a worker outlives a restart of
    /// either server.
    pub async fn run<T, H, Fut>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerStats, WorkerError>
    where
        T: DeserializeOwned + Send + 'static,
        H: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), WorkerError>> + Send + 'static,
    {
        let Worker {
            pool,
            mut reader,
            shared,
        } = self;
        let handler = Arc::new(handler);
        let cfg = &shared.config;
        tokio::pin!(shutdown);
        let mut tenants: Vec<String> = Vec::new();
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        let mut refreshed: Option<Instant> = None;
        let mut reclaimed = Instant::now();
        let mut rotate = 0usize;
        let mut failures = 0u32;
        loop {
            while let Some(done) = tasks.try_join_next() {
                release(&mut in_flight, done);
            }
            if refreshed.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
                match refresh(&mut reader, &shared, &mut tenants).await {
                    Ok(()) => refreshed = Some(Instant::now()),
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(target: "tenant_worker", code = e.code(), error = %e, "worker could not list tenant streams");
                    }
                }
            }
            let free_total = cfg.max_in_flight.saturating_sub(tasks.len());
            let mut candidates: Vec<(&str, usize)> = Vec::new();
            if free_total > 0 && !tenants.is_empty() {
                rotate = (rotate + 1) % tenants.len();
                for i in 0..tenants.len() {
                    let t = &tenants[(rotate + i) % tenants.len()];
                    let free = cfg
                        .per_tenant
                        .saturating_sub(in_flight.get(t).copied().unwrap_or(0));
                    if free > 0 {
                        candidates.push((t, free));
                    }
                }
            }
            let mut got = 0usize;
            if !candidates.is_empty() {
                let result = if reclaimed.elapsed() >= cfg.visibility / 2 {
                    reclaimed = Instant::now();
                    reclaim(&mut reader, &shared, &candidates, free_total).await
                } else {
                    read(&mut reader, &shared, &candidates, free_total).await
                };
                match result {
                    Ok(messages) => {
                        failures = 0;
                        for (tenant, entry, claimed) in messages {
                            got += 1;
                            if claimed {
                                shared.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
                            }
                            *in_flight.entry(tenant.clone()).or_default() += 1;
                            let shared = shared.clone();
                            let handler = handler.clone();
                            let pool = pool.clone();
                            tasks.spawn(async move {
                                let outcome = deliver::<T, H, Fut>(
                                    &shared, &pool, &*handler, &tenant, &entry,
                                )
                                .await;
                                settle(&shared, &tenant, &entry, outcome).await;
                                tenant
                            });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if e.to_string().contains("NOGROUP") {
                            refreshed = None;
                            tenants.clear();
                        }
                        tracing::warn!(target: "tenant_worker", code = e.code(), error = %e, "worker read failed");
                    }
                }
            }
            if got > 0 {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = std::future::ready(()) => {}
                }
                continue;
            }
            let pause = if failures > 0 {
                backoff(failures, Duration::from_millis(20), Duration::from_secs(1))
            } else {
                cfg.idle
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    release(&mut in_flight, done);
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
        while let Some(done) = tasks.join_next().await {
            release(&mut in_flight, done);
        }
        Ok(shared.counters.snapshot())
    }
}

fn release(in_flight: &mut HashMap<String, usize>, done: Result<String, tokio::task::JoinError>) {
    // A handler's panic is caught in the task; a task that still ends in a
    // JoinError (a panic in the worker's own code) keeps its slot taken.
    if let Ok(tenant) = done {
        if let Some(n) = in_flight.get_mut(&tenant) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Lists the tenant streams and creates the group on new ones.
async fn refresh(
    reader: &mut ConnectionManager,
    shared: &Shared,
    tenants: &mut Vec<String>,
) -> Result<(), WorkerError> {
    let mut all: Vec<String> = redis::cmd("SMEMBERS")
        .arg(shared.keys.tenants())
        .query_async(reader)
        .await?;
    all.sort();
    for t in &all {
        if tenants.binary_search(t).is_ok() {
            continue;
        }
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(shared.keys.stream(t))
            .arg(&*shared.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(reader)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    *tenants = all;
    Ok(())
}

type Delivery = (String, StreamId, bool);

/// `XREADGROUP … COUNT n` over the candidate tenants' streams, `n` being the
/// smallest free slot count, with no more streams than fit in `free_total`.
async fn read(
    reader: &mut ConnectionManager,
    shared: &Shared,
    candidates: &[(&str, usize)],
    free_total: usize,
) -> Result<Vec<Delivery>, WorkerError> {
    let count = candidates
        .iter()
        .map(|c| c.1)
        .min()
        .unwrap_or(1)
        .min(free_total.max(1));
    let streams = (free_total / count).clamp(1, candidates.len());
    let chosen = &candidates[..streams];
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&*shared.group)
        .arg(&shared.consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS");
    for (t, _) in chosen {
        cmd.arg(shared.keys.stream(t));
    }
    for _ in chosen {
        cmd.arg(">");
    }
    let reply: Option<StreamReadReply> = cmd.query_async(reader).await?;
    let mut out = Vec::new();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        let Some(tenant) = shared.keys.tenant_of(&key.key) else {
            continue;
        };
        let tenant = tenant.to_owned();
        for id in key.ids {
            out.push((tenant.clone(), id, false));
        }
    }
    Ok(out)
}

/// `XAUTOCLAIM` of messages idle longer than the visibility timeout, one
/// pipelined round trip over the candidate tenants' streams.
async fn reclaim(
    reader: &mut ConnectionManager,
    shared: &Shared,
    candidates: &[(&str, usize)],
    free_total: usize,
) -> Result<Vec<Delivery>, WorkerError> {
    let idle_ms = u64::try_from(shared.config.visibility.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    let mut asked: Vec<&str> = Vec::new();
    let mut left = free_total;
    for (t, free) in candidates {
        if left == 0 {
            break;
        }
        let count = (*free).min(left);
        left -= count;
        asked.push(t);
        pipe.cmd("XAUTOCLAIM")
            .arg(shared.keys.stream(t))
            .arg(&*shared.group)
            .arg(&shared.consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(count);
    }
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let replies: Vec<StreamAutoClaimReply> = pipe.query_async(reader).await?;
    let mut out = Vec::new();
    for (t, reply) in asked.into_iter().zip(replies) {
        for id in reply.claimed {
            out.push((t.to_owned(), id, true));
        }
    }
    Ok(out)
}

fn text(entry: &StreamId, name: &str) -> Option<String> {
    entry
        .map
        .get(name)
        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
}

/// Validates one delivery and runs the handler (with retries).
async fn deliver<T, H, Fut>(
    shared: &Shared,
    pool: &TenantPool,
    handler: &H,
    tenant: &str,
    entry: &StreamId,
) -> Outcome
where
    T: DeserializeOwned + Send + 'static,
    H: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), WorkerError>> + Send + 'static,
{
    let cfg = &shared.config;
    let (Some(raw), Some(event)) = (text(entry, field::ENVELOPE), text(entry, field::EVENT)) else {
        return Outcome::Dead(
            DeadLetterReason::EnvelopeMissing,
            "the entry has no `envelope` or no `event` field".into(),
        );
    };
    let Some(event_id) = parse_event_id(&event) else {
        let shown: String = event.chars().take(40).collect();
        return Outcome::Dead(
            DeadLetterReason::EventIdInvalid,
            format!("`{shown}` is not an outbox id (1 to 2^63-1, decimal)"),
        );
    };
    if raw.len() > cfg.max_envelope_bytes {
        return Outcome::Dead(
            DeadLetterReason::PayloadTooLarge,
            format!(
                "{} bytes, more than the {} accepted",
                raw.len(),
                cfg.max_envelope_bytes
            ),
        );
    }
    let envelope: Envelope<serde_json::Value> = match serde_json::from_str(&raw) {
        Ok(e) => e,
        Err(e) => return Outcome::Dead(DeadLetterReason::EnvelopeInvalid, e.to_string()),
    };
    let context = envelope.context().to_unvalidated();
    let ctx = match context.validate::<Validated>() {
        Ok(ctx) => ctx,
        Err(e) => return Outcome::Dead(DeadLetterReason::Context(e.code()), e.to_string()),
    };
    if ctx.tenant_id().as_str() != tenant {
        return Outcome::Dead(
            DeadLetterReason::TenantMismatch,
            format!(
                "the envelope's tenant `{}` is not the stream's `{tenant}`",
                ctx.tenant_id()
            ),
        );
    }
    // The caller of a handler is the tenant whose stream the event came
    // from: the relay writes there from that tenant's outbox, and the
    // outbox is asked whether it holds the event before the handler runs
    // (unless turned off) and in `Job::begin`, in the effect's transaction.
    let principal = ctx.trust("event read from the tenant's own stream");
    let mut incoming = Incoming::on_behalf_of(&principal);
    if let Some(v) = &cfg.validator {
        incoming = incoming.with_validator(v.clone());
        if let Err(e) = incoming.validate::<Validated>().await {
            return Outcome::Dead(DeadLetterReason::Context(e.code()), e.to_string());
        }
    }
    let topic = text(entry, field::TOPIC).unwrap_or_default();
    let (_, payload) = envelope.into_incoming();
    let mut first = match T::deserialize(&payload) {
        Ok(p) => Some(p),
        Err(e) => return Outcome::Dead(DeadLetterReason::PayloadInvalid, e.to_string()),
    };
    let raw: Arc<str> = raw.into();
    if cfg.check_before_handler {
        let entry = Entry {
            tenant,
            event_id,
            topic: &topic,
            envelope: &raw,
        };
        match precheck(shared, pool, &ctx, entry).await {
            Ok(Standing::Genuine) => {}
            Ok(Standing::Processed) => return Outcome::Duplicate,
            Ok(Standing::NotInOutbox) => return not_in_outbox(event_id),
            Err(e) => return Outcome::Dead(DeadLetterReason::AttemptsExhausted, e.to_string()),
        }
    }
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let payload: T = match first.take().map_or_else(|| T::deserialize(&payload), Ok) {
            Ok(p) => p,
            Err(e) => return Outcome::Dead(DeadLetterReason::PayloadInvalid, e.to_string()),
        };
        let job = Job {
            payload,
            event_id,
            message_id: entry.id.clone(),
            topic: topic.clone(),
            envelope: raw.clone(),
            tenant: tenant.to_owned(),
            attempt,
            pool: pool.clone(),
            group: shared.group.clone(),
        };
        let result = AssertUnwindSafe(incoming.clone().scope(handler(job)))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(WorkerError::handler("the handler panicked")));
        let error = match result {
            Ok(()) => return Outcome::Done,
            Err(WorkerError::AlreadyProcessed) => return Outcome::Duplicate,
            Err(WorkerError::NotInOutbox) => return not_in_outbox(event_id),
            Err(e) => e,
        };
        if !error.is_retryable() {
            let reason = match &error {
                WorkerError::Context(c) => DeadLetterReason::Context(c.code()),
                WorkerError::TenantMismatch => DeadLetterReason::TenantMismatch,
                other => DeadLetterReason::Handler(other.code()),
            };
            return Outcome::Dead(reason, error.to_string());
        }
        if attempt >= cfg.max_attempts {
            return Outcome::Dead(
                DeadLetterReason::AttemptsExhausted,
                format!("{attempt} attempts; the last: {error}"),
            );
        }
        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "tenant_worker", event_id, attempt, code = error.code(), error = %error, "handler failed; retrying");
        tokio::time::sleep(backoff(attempt, cfg.backoff_base, cfg.backoff_cap)).await;
    }
}

fn not_in_outbox(event_id: i64) -> Outcome {
    Outcome::Dead(
        DeadLetterReason::EventNotInOutbox,
        format!(
            "the outbox holds no event {event_id} for this tenant with this topic and \
             envelope (forged, or pruned before this group processed it)"
        ),
    )
}

/// [`standing`] in a transaction of its own, retried like a handler while
/// the database fails.
async fn precheck(
    shared: &Shared,
    pool: &TenantPool,
    ctx: &Ctx<Validated>,
    entry: Entry<'_>,
) -> Result<Standing, WorkerError> {
    let cfg = &shared.config;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = async {
            let mut tx = pool.begin(ctx).await?;
            let found = standing(&mut tx, &shared.group, entry).await?;
            tx.commit().await?;
            Ok::<_, WorkerError>(found)
        }
        .await;
        match result {
            Ok(found) => return Ok(found),
            Err(e) if e.is_retryable() && attempt < cfg.max_attempts => {
                tracing::warn!(target: "tenant_worker", event_id = entry.event_id, attempt, code = e.code(), error = %e, "outbox check failed; retrying");
                tokio::time::sleep(backoff(attempt, cfg.backoff_base, cfg.backoff_cap)).await;
            }
            Err(e) => {
                return Err(WorkerError::handler(format!(
                    "{attempt} attempts at the outbox check; the last: {e}"
                )))
            }
        }
    }
}

/// Acknowledges (after dead-lettering when needed), retrying a few times
/// through a Redis restart; a message left unacknowledged is reclaimed
/// later and recognised as processed.
async fn settle(shared: &Shared, tenant: &str, entry: &StreamId, outcome: Outcome) {
    let counters = &shared.counters;
    let stream = shared.keys.stream(tenant);
    let mut redis = shared.acker.clone();
    let mut pipe = redis::pipe();
    match &outcome {
        Outcome::Done => {
            counters.processed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Duplicate => {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Dead(reason, detail) => {
            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "tenant_worker", stream, id = entry.id, reason = reason.code(), detail, "message dead-lettered");
            let mut envelope = text(entry, field::ENVELOPE).unwrap_or_default();
            if envelope.len() > DEAD_ENVELOPE_KEEP {
                let mut cut = DEAD_ENVELOPE_KEEP;
                while !envelope.is_char_boundary(cut) {
                    cut -= 1;
                }
                envelope.truncate(cut);
            }
            pipe.cmd("XADD")
                .arg(shared.keys.dead())
                .arg("*")
                .arg("stream")
                .arg(&stream)
                .arg("id")
                .arg(&entry.id)
                .arg("group")
                .arg(&*shared.group)
                .arg("reason")
                .arg(reason.code())
                .arg("detail")
                .arg(detail)
                .arg(field::EVENT)
                .arg(text(entry, field::EVENT).unwrap_or_default())
                .arg(field::ENVELOPE)
                .arg(envelope)
                .ignore();
        }
    }
    pipe.cmd("XACK")
        .arg(&stream)
        .arg(&*shared.group)
        .arg(&entry.id)
        .ignore();
    for attempt in 1..=5u32 {
        match pipe.query_async::<()>(&mut redis).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(target: "tenant_worker", id = entry.id, error = %e, "acknowledgement failed");
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(50),
                    Duration::from_secs(1),
                ))
                .await;
            }
        }
    }
}
