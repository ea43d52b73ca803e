//! Workers end to end: events per second from the producer's transaction to
//! the effect committed by the consumer, ours against the common
//! check-then-set pattern (a Redis key checked before the work, set after).
//!
//! * `worker` (ours): the producer writes a business row and publishes the
//!   event through the outbox in the same `TenantTx`; the relay moves it to
//!   the tenant's stream; the worker's handler opens the event's tenant
//!   transaction with `Job::begin` (which records the event id in
//!   `tenant_processed_messages`), writes the effect, commits; then `XACK`.
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
//! `RATIO worker/check_then_set tasks=8: 0.91`.
//!
//! Then fairness: the p99 wait (publish to handler start) of a quiet
//! tenant's 40 events, alone and behind a flood of `BENCH_FLOOD` events
//! (default 100,000) from another tenant queued first, with 4 jobs in
//! flight, at most 2 per tenant.
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
use tenant_sqlx::testing::redis::TestRedis;
use tenant_sqlx::testing::{TestCluster, APP_ROLE};
use tenant_sqlx::worker::{self, Job, Relay, Worker, WorkerError};
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_tests::worker_fixture::{self, install, tenant, Effect, Handlers};
use tokio::sync::oneshot;

const TENANTS: usize = 20;
const PRODUCERS: usize = 4;
const TASKS: [usize; 2] = [1, 8];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Ours,
    CheckThenSet,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Ours => "worker",
            Variant::CheckThenSet => "check_then_set",
        }
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
                    Variant::Ours => {
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
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let started = Instant::now();
    let running = match variant {
        Variant::Ours => worker_fixture::spawn(worker, move |job| {
            let h = handlers.clone();
            async move { h.exactly_once(job).await }
        }),
        Variant::CheckThenSet => worker_fixture::spawn(worker, move |job| {
            let h = handlers.clone();
            async move { h.check_then_set(job).await }
        }),
    };
    let (relay_stop, relay_stopped) = oneshot::channel::<()>();
    let relay = if variant == Variant::Ours {
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
    loop {
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

fn raw_envelope(tenant: &str, seq: usize) -> String {
    format!(
        r#"{{"context":{{"tenant":"{tenant}"}},"payload":{{"tenant":"{tenant}","seq":{seq}}}}}"#
    )
}

/// The quiet tenant's p99 wait behind `flood` events of another tenant.
async fn quiet_p99(s: &Setup, flood: usize, run: usize) -> Duration {
    let prefix = format!("fair:{run}:{flood}");
    let (noisy, quiet) = ("tenant-noisy", "tenant-quiet");
    let mut conn = s.conn.clone();
    for chunk in (0..flood).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("XADD")
                .arg(format!("{prefix}:t:{noisy}"))
                .arg("*")
                .arg("event")
                .arg(10_000_000 * (run + 1) + i)
                .arg("envelope")
                .arg(raw_envelope(noisy, i))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
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
    for seq in 0..40usize {
        published.insert(seq as i64, Instant::now());
        redis::cmd("XADD")
            .arg(format!("{prefix}:t:{quiet}"))
            .arg("*")
            .arg("event")
            .arg(20_000_000 * (run + 1) + seq)
            .arg("envelope")
            .arg(raw_envelope(quiet, seq))
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
    let variants = [Variant::Ours, Variant::CheckThenSet];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len() * TASKS.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); TASKS.len()];
    for round in 0..rounds {
        for (ti, &tasks) in TASKS.iter().enumerate() {
            let mut this = [0.0; 2];
            // Alternate which variant goes first.
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1]
            } else {
                vec![1, 0]
            };
            for vi in order {
                let eps = measure(&mut s, variants[vi], tasks, round, events).await;
                this[vi] = eps;
                results[vi * TASKS.len() + ti].push(eps);
            }
            ratios[ti].push(this[0] / this[1]);
        }
        eprintln!("round {round} done");
    }
    println!("worker bench: {events} events over {TENANTS} tenants, {rounds} rounds, medians");
    for (vi, v) in variants.iter().enumerate() {
        for (ti, tasks) in TASKS.iter().enumerate() {
            println!(
                "{:<14} tasks={tasks}: {:>8.0} events/s",
                v.name(),
                median(&mut results[vi * TASKS.len() + ti])
            );
        }
    }
    for (ti, tasks) in TASKS.iter().enumerate() {
        println!(
            "RATIO worker/check_then_set tasks={tasks}: {:.2}",
            median(&mut ratios[ti])
        );
    }
    let flood = env_num("BENCH_FLOOD", 100_000);
    let mut alone = Vec::new();
    let mut flooded = Vec::new();
    for run in 0..3 {
        alone.push(quiet_p99(&s, 0, run).await.as_secs_f64() * 1e3);
        flooded.push(quiet_p99(&s, flood, run).await.as_secs_f64() * 1e3);
    }
    println!(
        "fairness: quiet tenant p99 wait {:.1} ms alone, {:.1} ms behind a {flood}-event flood (median of 3)",
        median(&mut alone),
        median(&mut flooded)
    );
    Ok(())
}
