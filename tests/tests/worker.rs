//! Workers on a real Redis and a real PostgreSQL: bad envelopes are
//! dead-lettered with their reason while the rest flow, retries end in the
//! dead-letter stream, shutdown finishes the jobs in flight, and a flooding
//! tenant does not starve a quiet one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sqlx::{Connection, PgConnection};
use tenant_core::{with_context, Ctx, Validated};
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_testing::redis::TestRedis;
use tenant_testing::{TestCluster, TestDatabase};
use tenant_tests::worker_fixture::{
    self, audit_effects, install, produce, Effect, Handlers, GROUP,
};
use tenant_worker::{Job, Relay, Worker, WorkerError, WorkerStats};

struct Setup {
    db: TestDatabase,
    redis: TestRedis,
    client: redis::Client,
    pool: TenantPool,
    admin: PgConnection,
}

async fn setup() -> Setup {
    let cluster = TestCluster::shared().await.expect("cluster");
    let db = cluster.create_database().await.expect("database");
    install(&db).await;
    let redis = TestRedis::start().await.expect("redis");
    let client = redis::Client::open(redis.url()).unwrap();
    let pool = TenantPool::builder()
        .max_connections(8)
        .connect(db.app_url())
        .await
        .expect("the worker tables pass the audit");
    let admin = PgConnection::connect(db.admin_url()).await.unwrap();
    Setup {
        db,
        redis,
        client,
        pool,
        admin,
    }
}

impl Setup {
    async fn conn(&self) -> ConnectionManager {
        self.client.get_connection_manager().await.unwrap()
    }

    /// Publishes everything in the outbox.
    async fn relay_all(&self) {
        let admin = AdminPool::connect(self.db.admin_url()).await.unwrap();
        let mut relay = Relay::builder().start(&admin, &self.client).await.unwrap();
        while relay.run_once().await.unwrap() > 0 {}
    }

    fn handlers(&self, conn: ConnectionManager) -> Handlers {
        Handlers {
            pool: self.pool.clone(),
            redis: conn,
            crash: Arc::new(|_| None),
            handled: Arc::new(AtomicU64::new(0)),
            on_crash: Arc::new(|_| {}),
        }
    }

    async fn effects(&mut self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&mut self.admin)
            .await
            .unwrap()
    }
}

async fn xadd(conn: &mut ConnectionManager, tenant: &str, event: &str, envelope: Option<&str>) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(format!("tenant:events:t:{tenant}"))
        .arg("*")
        .arg("event")
        .arg(event)
        .arg("topic")
        .arg("effect");
    if let Some(envelope) = envelope {
        cmd.arg("envelope").arg(envelope);
    }
    cmd.query_async::<()>(conn).await.unwrap();
    redis::cmd("SADD")
        .arg("tenant:events:tenants")
        .arg(tenant)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

/// The dead-letter stream as (reason, event) pairs.
async fn dead_letters(conn: &mut ConnectionManager) -> Vec<(String, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("tenant:events:dead")
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            (
                e.get::<String>("reason").unwrap(),
                e.get::<String>("event").unwrap(),
            )
        })
        .collect()
}

async fn pending(conn: &mut ConnectionManager, tenant: &str) -> i64 {
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(format!("tenant:events:t:{tenant}"))
        .arg(GROUP)
        .query_async(conn)
        .await
        .unwrap();
    match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => panic!("unexpected XPENDING reply {items:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// Runs `worker` with `handler` until `done` says so (bounded), then shuts
/// it down and returns its counts.
async fn run_until<F, Fut>(
    worker: Worker,
    handler: F,
    mut done: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
) -> WorkerStats
where
    F: Fn(Job<Effect>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), WorkerError>> + Send + 'static,
{
    let running = worker_fixture::spawn(worker, handler);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "the worker did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await.unwrap()
}

fn envelope(tenant: Option<&str>, agent: Option<&str>, payload: &str) -> String {
    let mut context = serde_json::Map::new();
    if let Some(t) = tenant {
        context.insert("tenant".into(), t.into());
    }
    if let Some(a) = agent {
        context.insert("agent".into(), a.into());
    }
    format!(
        r#"{{"context":{},"payload":{payload}}}"#,
        serde_json::Value::Object(context)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelopes_are_dead_lettered_with_their_reason_while_the_rest_flow() {
    let mut s = setup().await;
    let mut conn = s.conn().await;
    let (a, b) = ("tenant-001", "tenant-002");
    // Good events first and last, bad ones in between, on the same streams.
    for t in [a, b] {
        produce(&s.pool, t, 0, 10).await;
    }
    s.relay_all().await;
    let ok = |t: &str| format!(r#"{{"tenant":"{t}","seq":1}}"#);
    let huge = format!(
        r#"{{"tenant":"{a}","seq":1,"pad":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let bad: Vec<(&str, &str, Option<String>)> = vec![
        (
            "9000001",
            "TENANT_REQUIRED",
            Some(envelope(None, Some("x"), &ok(a))),
        ),
        (
            "9000002",
            "TENANT_INVALID",
            Some(envelope(Some("default"), Some("x"), &ok(a))),
        ),
        (
            "9000003",
            "PAYLOAD_TOO_LARGE",
            Some(envelope(Some(a), Some("x"), &huge)),
        ),
        (
            "9000004",
            "PAYLOAD_INVALID",
            Some(envelope(Some(a), Some("x"), r#""not an effect""#)),
        ),
        // Forged: tenant b's context on tenant a's stream.
        (
            "9000005",
            "TENANT_MISMATCH",
            Some(envelope(Some(b), Some("x"), &ok(b))),
        ),
        // Consistent, but no transaction wrote it.
        (
            "9000006",
            "EVENT_NOT_IN_OUTBOX",
            Some(envelope(Some(a), Some("x"), &ok(a))),
        ),
        ("9000007", "ENVELOPE_INVALID", Some("{not json".to_owned())),
        ("9000008", "ENVELOPE_MISSING", None),
    ];
    for (event, _, env) in &bad {
        xadd(&mut conn, a, event, env.as_deref()).await;
    }
    // A genuine event without an agent (written by SQL into the outbox):
    // the handler declares `agent`, so the macro refuses the context.
    let agentless: i64 = sqlx::query_scalar(
        "INSERT INTO tenant_outbox (tenant_id, topic, envelope) VALUES ($1, 'effect', $2) RETURNING id",
    )
    .bind(a)
    .bind(envelope(Some(a), None, &ok(a)))
    .fetch_one(&mut s.admin)
    .await
    .unwrap();
    let agentless = agentless.to_string();
    let mut bad = bad;
    bad.push((agentless.as_str(), "AGENT_REQUIRED", None));
    for t in [a, b] {
        produce(&s.pool, t, 10, 10).await;
    }
    s.relay_all().await;

    let worker = Worker::builder(GROUP)
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let h = s.handlers(conn.clone());
    let probe = s.db.admin_url().to_owned();
    let dead_conn = conn.clone();
    let stats = run_until(
        worker,
        move |job| {
            let h = h.clone();
            async move { h.exactly_once(job).await }
        },
        move || {
            let url = probe.clone();
            let mut c = dead_conn.clone();
            Box::pin(async move {
                let mut admin = PgConnection::connect(&url).await.unwrap();
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
                n == 40 && dead_letters(&mut c).await.len() == 9
            })
        },
    )
    .await;

    assert_eq!(audit_effects(&mut s.admin).await, (40, 40, 0, 0));
    let mut dead = dead_letters(&mut conn).await;
    dead.sort_by(|x, y| x.1.cmp(&y.1));
    let mut expected: Vec<(String, String)> = bad
        .iter()
        .map(|(e, r, _)| (r.to_string(), e.to_string()))
        .collect();
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(dead, expected);
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE event_id >= 9000000")
        .fetch_one(&mut s.admin)
        .await
        .unwrap();
    assert_eq!(leaked, 0, "no bad envelope reached the handler's effect");
    assert_eq!((stats.processed, stats.dead_lettered), (40, 9));
    for t in [a, b] {
        assert_eq!(pending(&mut conn, t).await, 0, "everything acknowledged");
    }
    assert_eq!(s.effects().await, 40);
    drop(s.redis);
}

/// Fails on every attempt for `seq == 3`.
#[derive(Clone)]
struct Flaky {
    pool: TenantPool,
    attempts: Arc<AtomicU64>,
}

impl Flaky {
    #[with_context(tenant)]
    async fn handle(&self, job: Job<Effect>, ctx: Ctx<Validated>) -> Result<(), WorkerError> {
        if job.payload().seq == 3 {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            return Err(WorkerError::handler("the downstream service is down"));
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
        let _ = &self.pool;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_retried_with_backoff_then_dead_lettered() {
    let mut s = setup().await;
    let mut conn = s.conn().await;
    produce(&s.pool, "tenant-001", 0, 6).await;
    s.relay_all().await;
    let flaky = Flaky {
        pool: s.pool.clone(),
        attempts: Arc::new(AtomicU64::new(0)),
    };
    let attempts = flaky.attempts.clone();
    let worker = Worker::builder(GROUP)
        .max_attempts(3)
        .backoff(Duration::from_millis(40), Duration::from_secs(1))
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let started = Instant::now();
    let dead_conn = conn.clone();
    let stats = run_until(
        worker,
        move |job| {
            let f = flaky.clone();
            async move { f.handle(job).await }
        },
        move || {
            let mut c = dead_conn.clone();
            Box::pin(async move { !dead_letters(&mut c).await.is_empty() })
        },
    )
    .await;
    // Backoff 40 ms then 80 ms between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let dead = dead_letters(&mut conn).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "ATTEMPTS_EXHAUSTED");
    assert_eq!(
        (stats.processed, stats.retries, stats.dead_lettered),
        (5, 2, 1)
    );
    assert_eq!(s.effects().await, 5);
    assert_eq!(pending(&mut conn, "tenant-001").await, 0);
}

/// Holds each job for a while, to be caught in flight by a shutdown.
#[derive(Clone)]
struct Slow {
    started: Arc<AtomicU64>,
}

impl Slow {
    #[with_context(tenant)]
    async fn handle(&self, job: Job<Effect>, ctx: Ctx<Validated>) -> Result<(), WorkerError> {
        let mut tx = job.begin(&ctx).await?;
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_jobs_in_flight() {
    let mut s = setup().await;
    let mut conn = s.conn().await;
    for t in ["tenant-001", "tenant-002"] {
        produce(&s.pool, t, 0, 10).await;
    }
    s.relay_all().await;
    let slow = Slow {
        started: Arc::new(AtomicU64::new(0)),
    };
    let started = slow.started.clone();
    let worker = Worker::builder(GROUP)
        .max_in_flight(4)
        .per_tenant_in_flight(2)
        .start(s.pool.clone(), &s.client)
        .await
        .unwrap();
    let stats = run_until(
        worker,
        move |job| {
            let s = slow.clone();
            async move { s.handle(job).await }
        },
        move || {
            let n = started.load(Ordering::SeqCst);
            Box::pin(async move { n >= 4 })
        },
    )
    .await;
    // Shutdown came while 4 jobs slept: each finished and was acknowledged;
    // nothing more was read.
    let effects = s.effects().await;
    assert!(effects >= 4, "{effects}");
    assert_eq!(stats.processed as i64, effects);
    assert!(effects < 20, "the worker stopped reading at shutdown");
    for t in ["tenant-001", "tenant-002"] {
        assert_eq!(pending(&mut conn, t).await, 0);
    }
}

/// Records when each quiet-tenant event started.
#[derive(Clone)]
struct Probe {
    quiet: String,
    seen: Arc<Mutex<HashMap<i64, Instant>>>,
    flood_done: Arc<AtomicU64>,
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
        // Some work per event, so the flood is a real backlog.
        sqlx::query("SELECT pg_sleep(0.002)")
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        if ctx.tenant_id().as_str() != self.quiet {
            self.flood_done.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// p99 of the quiet tenant's waits (publish to handler start), with a flood
/// of `flood` events from another tenant queued first; and how much of the
/// flood was done when the last quiet event started.
async fn quiet_waits(flood: usize) -> (Duration, u64) {
    let mut s = setup().await;
    let mut conn = s.conn().await;
    let (noisy, quiet) = ("tenant-noisy", "tenant-quiet");
    // The flood is genuine (the worker applies only what the outbox holds):
    // written straight into the outbox, then relayed before the worker
    // starts.
    sqlx::query(
        "INSERT INTO tenant_outbox (tenant_id, topic, envelope)
         SELECT $1, 'effect', format('{\"context\":{\"tenant\":\"%s\"},\"payload\":{\"tenant\":\"%s\",\"seq\":%s}}', $1, $1, g)
           FROM generate_series(0, $2 - 1) g ORDER BY g",
    )
    .bind(noisy)
    .bind(flood as i64)
    .execute(&mut s.admin)
    .await
    .unwrap();
    s.relay_all().await;
    redis::cmd("SADD")
        .arg("tenant:events:tenants")
        .arg(noisy)
        .arg(quiet)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let admin = AdminPool::connect(s.db.admin_url()).await.unwrap();
    let relay = Relay::builder()
        .idle(Duration::from_millis(2))
        .start(&admin, &s.client)
        .await
        .unwrap();
    let (relay_stop, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(relay.run(async move {
        let _ = relay_stopped.await;
    }));
    let probe = Probe {
        quiet: quiet.into(),
        seen: Arc::default(),
        flood_done: Arc::default(),
    };
    let worker = Worker::builder(GROUP)
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut published = HashMap::new();
    for seq in 0..40i64 {
        published.insert(seq, Instant::now());
        produce(&s.pool, quiet, seq, 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe.seen.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the quiet tenant starved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flood_done = probe.flood_done.load(Ordering::SeqCst);
    let stats = running.stop().await.unwrap();
    let _ = relay_stop.send(());
    relay.await.unwrap();
    assert_eq!(stats.dead_lettered, 0, "every event is genuine");
    let seen = probe.seen.lock().unwrap();
    let mut waits: Vec<Duration> = published
        .iter()
        .map(|(seq, t)| seen[seq].saturating_duration_since(*t))
        .collect();
    waits.sort();
    (waits[(waits.len() * 99).div_ceil(100) - 1], flood_done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_starve_a_quiet_one() {
    let (alone, _) = quiet_waits(0).await;
    let flood = 5_000;
    let (flooded, flood_done) = quiet_waits(flood).await;
    println!("quiet tenant p99 wait: alone {alone:?}, behind a {flood}-event flood {flooded:?} (flood done when the quiet tenant finished: {flood_done})");
    // Without the per-tenant bound the quiet events would wait behind the
    // whole flood (5,000 × ≥2 ms ≥ 10 s of work on 4 slots ≥ 2.5 s).
    assert!(
        (flood_done as usize) < flood / 2,
        "the quiet tenant finished before half the flood: {flood_done}"
    );
    assert!(flooded < Duration::from_secs(1), "p99 {flooded:?}");
}
