//! Workers end to end: events per second from the producer's transaction to
//! the effect committed by the consumer, ours against the common
//! check-then-set pattern (a Redis key checked before the work, set after).
//!
//! * `worker` (ours): the producer writes a business row and publishes the
//!   event through the outbox in the same `TenantTx`; the relay moves it to
//!   the tenant's stream; the worker checks that the outbox holds the event
//!   (a short tenant transaction, `check_before_handler`, the default); the
//!   handler opens the event's tenant transaction with `Job::begin` (which
//!   proves again that the outbox holds the event and records it in
//!   `tenant_processed_messages`, one statement), writes the effect,
//!   commits; then `XACK`.
//! * `worker_begin_only`: the same with `check_before_handler(false)`, so
//!   the only genuineness check is the one inside `Job::begin`.
//! * `check_then_set` (the usual deduplication with a Redis key): the
//!   producer writes the business row, commits, then `XADD`s the event
//!   itself (lost if it dies in between);
//!   the handler checks `EXISTS processed:{id}` in Redis, writes the effect
//!   in a tenant transaction, commits, then `SET processed:{id}` (applied
//!   twice if it dies in between; see `tests/tests/worker_crash.rs`); then
//!   `XACK`. Same worker loop, same pool, same Redis.
//!
//! Each measurement publishes `BENCH_EVENTS` events (default 2000) over 20
//! tenants from 4 producer tasks while the consumer runs with 1 or 8 tasks
//! in flight, and times until the last effect is committed. Variants are
//! interleaved over `BENCH_ROUNDS` rounds (default 5); each line reports the
//! median, and each ratio is the median of per-round ratios:
//! `RATIO worker/check_then_set tasks=8: 0.91`. The cost of the check
//! before the handler is the difference of `worker` and `worker_begin_only`
//! in µs per event.
//!
//! Then the proof inside `Job::begin` alone, side by side on one
//! connection pool: `BENCH_PROOFS` (default 2000) tenant transactions that
//! record an event with the proof (`INSERT … SELECT` from the outbox by
//! tenant, id, topic and envelope, as `Job::begin` does) against as many
//! that record it with a plain `INSERT … VALUES` (no proof), in µs per
//! transaction, interleaved in chunks of 20.
//!
//! Then fairness: the p99 wait (publish to handler start) of a quiet
//! tenant's 40 events, alone and behind a flood of `BENCH_FLOOD` events
//! (default 100,000) from another tenant queued first, with 4 jobs in
//! flight, at most 2 per tenant. The events are genuine: written into the
//! outbox by SQL and added to the streams with their outbox ids.
//!
//! Run: `cargo bench -p tenant-benches --bench worker`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_core::envelope::Envelope;
use tenant_core::{with_context, Ctx, Validated};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_testing::redis::TestRedis;
use tenant_testing::{TestCluster, APP_ROLE};
use tenant_tests::worker_fixture::{self, install, tenant, Effect, Handlers};
use tenant_worker::{self as worker, Job, Relay, Worker, WorkerError};
use tokio::sync::oneshot;

const TENANTS: usize = 20;
const PRODUCERS: usize = 4;
const TASKS: [usize; 2] = [1, 8];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Ours,
    OursBeginOnly,
    CheckThenSet,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Ours => "worker",
            Variant::OursBeginOnly => "worker_begin_only",
            Variant::CheckThenSet => "check_then_set",
        }
    }

    fn ours(self) -> bool {
        self != Variant::CheckThenSet
    }
}

struct Setup {
    admin_url: String,
    pool: TenantPool,
    admin_pool: AdminPool,
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    admin: PgConnection,
    next_event: Arc<AtomicI64>,
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn produce(s: &Setup, variant: Variant, prefix: &str, events: usize) {
    let mut handles = Vec::new();
    for p in 0..PRODUCERS {
        let pool = s.pool.clone();
        let mut conn = s.conn.clone();
        let prefix = prefix.to_owned();
        let next = s.next_event.clone();
        handles.push(tokio::spawn(async move {
            for i in (p..events).step_by(PRODUCERS) {
                let t = tenant(i % TENANTS);
                let ctx: Ctx<Validated> = Ctx::unvalidated()
                    .with_tenant(t.as_str())
                    .with_agent("producer")
                    .validate()
                    .unwrap();
                let effect = Effect {
                    tenant: t.clone(),
                    seq: i as i64,
                };
                let mut tx = pool.begin(&ctx).await.unwrap();
                sqlx::query("INSERT INTO items (tenant_id, seq) VALUES ($1, $2)")
                    .bind(&t)
                    .bind(i as i64)
                    .execute(&mut tx)
                    .await
                    .unwrap();
                match variant {
                    Variant::Ours | Variant::OursBeginOnly => {
                        worker::publish(&mut tx, "effect", &effect).await.unwrap();
                        tx.commit().await.unwrap();
                    }
                    Variant::CheckThenSet => {
                        tx.commit().await.unwrap();
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let env = serde_json::to_string(&Envelope::new(&ctx, &effect)).unwrap();
                        redis::pipe()
                            .cmd("XADD")
                            .arg(format!("{prefix}:t:{t}"))
                            .arg("*")
                            .arg("event")
                            .arg(id)
                            .arg("topic")
                            .arg("effect")
                            .arg("envelope")
                            .arg(env)
                            .ignore()
                            .cmd("SADD")
                            .arg(format!("{prefix}:tenants"))
                            .arg(&t)
                            .ignore()
                            .query_async::<()>(&mut conn)
                            .await
                            .unwrap();
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// One measurement: events per second end to end.
async fn measure(
    s: &mut Setup,
    variant: Variant,
    tasks: usize,
    round: usize,
    events: usize,
) -> f64 {
    sqlx::raw_sql("TRUNCATE effects, items")
        .execute(&mut s.admin)
        .await
        .unwrap();
    let prefix = format!("bench:{round}:{}:{tasks}", variant.name());
    let group = "bench";
    let handlers = Handlers {
        pool: s.pool.clone(),
        redis: s.conn.clone(),
        crash: Arc::new(|_| None),
        handled: Arc::new(AtomicU64::new(0)),
        on_crash: Arc::new(|_| {}),
    };
    let worker = Worker::builder(group)
        .prefix(prefix.as_str())
        .max_in_flight(tasks)
        .per_tenant_in_flight(2.min(tasks))
        // check_then_set's producer writes no outbox row: its worker checks
        // nothing (its handler does not call `Job::begin` either).
        .check_before_handler(variant == Variant::Ours)
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let started = Instant::now();
    let running = match variant {
        Variant::Ours | Variant::OursBeginOnly => worker_fixture::spawn(worker, move |job| {
            let h = handlers.clone();
            async move { h.exactly_once(job).await }
        }),
        Variant::CheckThenSet => worker_fixture::spawn(worker, move |job| {
            let h = handlers.clone();
            async move { h.check_then_set(job).await }
        }),
    };
    let (relay_stop, relay_stopped) = oneshot::channel::<()>();
    let relay = if variant.ours() {
        let relay = Relay::builder()
            .prefix(prefix.as_str())
            .idle(Duration::from_millis(2))
            .start(&s.admin_pool, &s.client)
            .await
            .unwrap();
        Some(tokio::spawn(relay.run(async move {
            let _ = relay_stopped.await;
        })))
    } else {
        None
    };
    produce(s, variant, &prefix, events).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "{} did not apply {events} events in 10 minutes",
            variant.name()
        );
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&mut s.admin)
            .await
            .unwrap();
        if n as usize >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    running.stop().await.unwrap();
    let _ = relay_stop.send(());
    if let Some(r) = relay {
        r.await.unwrap();
    }
    events as f64 / elapsed.as_secs_f64()
}

/// Records when each quiet-tenant event started.
#[derive(Clone)]
struct Probe {
    quiet: String,
    seen: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Probe {
    #[with_context(tenant)]
    async fn handle(&self, job: Job<Effect>, ctx: Ctx<Validated>) -> Result<(), WorkerError> {
        if ctx.tenant_id().as_str() == self.quiet {
            self.seen
                .lock()
                .unwrap()
                .insert(job.payload().seq, Instant::now());
        }
        let mut tx = job.begin(&ctx).await?;
        sqlx::query("INSERT INTO effects (tenant_id, event_id, payload_tenant, seq) VALUES ($1, $2, $3, $4)")
            .bind(ctx.tenant_id().as_str())
            .bind(job.event_id())
            .bind(&job.payload().tenant)
            .bind(job.payload().seq)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes `n` genuine events of `tenant` (sequence numbers from `first`)
/// into the outbox by SQL, marked published, and gives their ids and
/// envelopes, for the caller to add to the stream.
async fn outbox_rows(
    admin: &mut PgConnection,
    tenant: &str,
    first: usize,
    n: usize,
) -> Vec<(i64, String)> {
    sqlx::query_as(
        "INSERT INTO tenant_outbox (tenant_id, topic, envelope, published_at)
         SELECT $1, 'effect',
                format('{\"context\":{\"tenant\":\"%s\"},\"payload\":{\"tenant\":\"%s\",\"seq\":%s}}', $1, $1, g),
                now()
           FROM generate_series($2::bigint, $2 + $3 - 1) g ORDER BY g
         RETURNING id, envelope",
    )
    .bind(tenant)
    .bind(first as i64)
    .bind(n as i64)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// The quiet tenant's p99 wait behind `flood` events of another tenant.
async fn quiet_p99(s: &mut Setup, flood: usize, run: usize) -> Duration {
    let prefix = format!("fair:{run}:{flood}");
    let (noisy, quiet) = ("tenant-noisy", "tenant-quiet");
    let mut conn = s.conn.clone();
    let rows = outbox_rows(&mut s.admin, noisy, 0, flood).await;
    for chunk in rows.chunks(500) {
        let mut pipe = redis::pipe();
        for (id, envelope) in chunk {
            pipe.cmd("XADD")
                .arg(format!("{prefix}:t:{noisy}"))
                .arg("*")
                .arg("event")
                .arg(*id)
                .arg("topic")
                .arg("effect")
                .arg("envelope")
                .arg(envelope)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let quiet_rows = outbox_rows(&mut s.admin, quiet, 0, 40).await;
    redis::cmd("SADD")
        .arg(format!("{prefix}:tenants"))
        .arg(noisy)
        .arg(quiet)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let probe = Probe {
        quiet: quiet.into(),
        seen: Arc::default(),
    };
    let worker = Worker::builder("fair")
        .prefix(prefix.as_str())
        .max_in_flight(4)
        .per_tenant_in_flight(2)
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let p = probe.clone();
    let running = worker_fixture::spawn(worker, move |job| {
        let p = p.clone();
        async move { p.handle(job).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut published = HashMap::new();
    for (seq, (id, envelope)) in quiet_rows.iter().enumerate() {
        published.insert(seq as i64, Instant::now());
        redis::cmd("XADD")
            .arg(format!("{prefix}:t:{quiet}"))
            .arg("*")
            .arg("event")
            .arg(*id)
            .arg("topic")
            .arg("effect")
            .arg("envelope")
            .arg(envelope)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while probe.seen.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.stop().await.unwrap();
    redis::cmd("DEL")
        .arg(format!("{prefix}:t:{noisy}"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let seen = probe.seen.lock().unwrap();
    let mut waits: Vec<Duration> = published
        .iter()
        .map(|(seq, t)| seen[seq].saturating_duration_since(*t))
        .collect();
    waits.sort();
    waits[(waits.len() * 99).div_ceil(100) - 1]
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// µs per tenant transaction that records an event with the outbox proof
/// (the statement `Job::begin` runs) and with a plain insert, interleaved
/// in chunks of 20 (each first every other time); medians over the chunks.
async fn proof_cost(s: &mut Setup, n: usize) -> (f64, f64) {
    let mut rows = Vec::new();
    for t in 0..TENANTS {
        let tenant = tenant(t);
        for (id, envelope) in outbox_rows(&mut s.admin, &tenant, 0, n.div_ceil(TENANTS)).await {
            rows.push((tenant.clone(), id, envelope));
        }
    }
    rows.sort_by_key(|r| r.1);
    let mut proof = Vec::new();
    let mut plain = Vec::new();
    for (i, chunk) in rows.chunks(20).enumerate() {
        for with_proof in [i % 2 == 0, i % 2 == 1] {
            let started = Instant::now();
            for (tenant, id, envelope) in chunk {
                let ctx: Ctx<Validated> = Ctx::unvalidated()
                    .with_tenant(tenant.as_str())
                    .validate()
                    .unwrap();
                let mut tx = s.pool.begin(&ctx).await.unwrap();
                let recorded = if with_proof {
                    sqlx::query(
                        "INSERT INTO tenant_processed_messages (tenant_id, consumer_group, event_id)
                         SELECT o.tenant_id, $3, o.id FROM tenant_outbox o
                          WHERE o.tenant_id = $1 AND o.id = $2 AND o.topic = $4 AND o.envelope = $5
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind("proof")
                    .bind("effect")
                    .bind(envelope)
                    .execute(&mut tx)
                    .await
                } else {
                    sqlx::query(
                        "INSERT INTO tenant_processed_messages (tenant_id, consumer_group, event_id)
                         VALUES ($1, $3, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind("plain")
                    .execute(&mut tx)
                    .await
                };
                assert_eq!(recorded.unwrap().rows_affected(), 1);
                tx.commit().await.unwrap();
            }
            let per = started.elapsed().as_secs_f64() * 1e6 / chunk.len() as f64;
            if with_proof {
                proof.push(per);
            } else {
                plain.push(per);
            }
        }
    }
    (median(&mut proof), median(&mut plain))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_num("BENCH_ROUNDS", 5);
    let events = env_num("BENCH_EVENTS", 2000);
    let cluster = TestCluster::from_env().await?;
    let db = cluster.create_database().await?;
    install(&db).await;
    let mut owner = PgConnection::connect(db.owner_url()).await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE items (tenant_id text NOT NULL, seq bigint NOT NULL); {}",
        RlsPolicy::new("items", "tenant_id")
            .grant_to(APP_ROLE)
            .sql()
    ))
    .execute(&mut owner)
    .await?;
    let redis = TestRedis::start().await?;
    let client = redis::Client::open(redis.url())?;
    let mut s = Setup {
        admin_url: db.admin_url().to_owned(),
        pool: TenantPool::builder()
            .max_connections(16)
            .connect(db.app_url())
            .await?,
        admin_pool: AdminPool::connect(db.admin_url()).await?,
        conn: client.get_connection_manager().await?,
        client,
        admin: PgConnection::connect(db.admin_url()).await?,
        next_event: Arc::new(AtomicI64::new(1)),
    };
    let _ = &s.admin_url;
    let variants = [Variant::Ours, Variant::OursBeginOnly, Variant::CheckThenSet];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len() * TASKS.len()];
    // Per tasks: worker/check_then_set, worker/worker_begin_only, and the
    // check before the handler in µs per event.
    let mut ratios: Vec<[Vec<f64>; 3]> = vec![Default::default(); TASKS.len()];
    for round in 0..rounds {
        for (ti, &tasks) in TASKS.iter().enumerate() {
            let mut this = [0.0; 3];
            // Rotate which variant goes first.
            for k in 0..variants.len() {
                let vi = (k + round) % variants.len();
                let eps = measure(&mut s, variants[vi], tasks, round, events).await;
                this[vi] = eps;
                results[vi * TASKS.len() + ti].push(eps);
            }
            ratios[ti][0].push(this[0] / this[2]);
            ratios[ti][1].push(this[0] / this[1]);
            ratios[ti][2].push((1.0 / this[0] - 1.0 / this[1]) * 1e6);
        }
        eprintln!("round {round} done");
    }
    println!(
        "worker bench: {events} events over {TENANTS} tenants, {rounds} rounds, medians; load average {}",
        load_average()
    );
    for (vi, v) in variants.iter().enumerate() {
        for (ti, tasks) in TASKS.iter().enumerate() {
            println!(
                "{:<17} tasks={tasks}: {:>8.0} events/s",
                v.name(),
                median(&mut results[vi * TASKS.len() + ti])
            );
        }
    }
    for (ti, tasks) in TASKS.iter().enumerate() {
        let [seed, begin_only, check] = &mut ratios[ti];
        println!(
            "RATIO worker/check_then_set tasks={tasks}: {:.2}",
            median(seed)
        );
        println!(
            "RATIO worker/worker_begin_only tasks={tasks}: {:.2} (the check before the handler: {:+.0} µs/event)",
            median(begin_only),
            median(check)
        );
    }
    let (proof, plain) = proof_cost(&mut s, env_num("BENCH_PROOFS", 2000)).await;
    println!(
        "genuineness proof in Job::begin: {proof:.0} µs per transaction with it, {plain:.0} µs with a plain insert ({:+.0} µs/event); load average {}",
        proof - plain,
        load_average()
    );
    let flood = env_num("BENCH_FLOOD", 100_000);
    let mut alone = Vec::new();
    let mut flooded = Vec::new();
    for run in 0..3 {
        alone.push(quiet_p99(&mut s, 0, run).await.as_secs_f64() * 1e3);
        flooded.push(quiet_p99(&mut s, flood, run).await.as_secs_f64() * 1e3);
    }
    println!(
        "fairness: quiet tenant p99 wait {:.1} ms alone, {:.1} ms behind a {flood}-event flood (median of 3)",
        median(&mut alone),
        median(&mut flooded)
    );
    Ok(())
}
