//! One tenant floods, another stays quiet: does the quiet one notice?
//!
//! A 16-connection `TenantPool` on a throwaway PostgreSQL. The quiet tenant
//! runs one transaction at a time; each transaction (quiet or flood) reads
//! one row and holds its connection for `BENCH_HOLD_MS` (default 2 ms,
//! `pg_sleep`), like a short request's queries. The quiet tenant's latency
//! (`begin` to `commit`) is measured:
//!
//! 1. alone;
//! 2. beside a flooding tenant with 64 concurrent tasks, on a pool that
//!    hands connections out first come, first served (`fair_shares(None)`);
//! 3. the same flood on a pool with fair shares (the default: half the
//!    pool per tenant, an eighth kept free when bursting, tenants served in
//!    turn).
//!
//! The three are interleaved over `BENCH_ROUNDS` rounds (default 5), each
//! `BENCH_QUIET` quiet transactions (default 200). The p99 of each is over
//! all rounds; the ratios are quiet p99 flooded / quiet p99 alone (lower is
//! better; 1.00 means the flood went unnoticed), and the flood's own
//! throughput under each pool shows what fairness costs it.
//!
//! Run: `cargo bench -p tenant-benches --bench fairness`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::{FairShares, TenantPool};
use tenant_testing::{TestCluster, APP_ROLE};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const POOL_SIZE: u32 = 16;
const FLOOD_TASKS: usize = 64;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .validate()
        .expect("a valid tenant")
}

/// One transaction: begin, read a row, hold the connection, commit.
async fn one(pool: &TenantPool, ctx: &Ctx<Validated>, hold: f64) -> Result<(), BoxError> {
    let mut tx = pool.begin(ctx).await?;
    let _: Option<i32> = sqlx::query_scalar("SELECT id FROM items WHERE id = 1")
        .fetch_optional(&mut tx)
        .await?;
    sqlx::query("SELECT pg_sleep($1)")
        .bind(hold)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The quiet tenant's latencies over `n` transactions, one at a time.
async fn quiet(pool: &TenantPool, n: u64, hold: f64) -> Result<Vec<Duration>, BoxError> {
    let c = ctx("quiet");
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let started = Instant::now();
        one(pool, &c, hold).await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

/// The quiet tenant's latencies while `FLOOD_TASKS` tasks of another tenant
/// loop on transactions; and the flood's transactions per second.
async fn flooded(pool: &TenantPool, n: u64, hold: f64) -> Result<(Vec<Duration>, f64), BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..FLOOD_TASKS {
        let (pool, stop, done) = (pool.clone(), Arc::clone(&stop), Arc::clone(&done));
        flood.push(tokio::spawn(async move {
            let c = ctx("flood");
            while !stop.load(Ordering::Relaxed) {
                // A flood past its share may be told TENANT_BUSY: it
                // retries, as a client would.
                if one(&pool, &c, hold).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the flood fill the pool first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = done.load(Ordering::Relaxed);
    let started = Instant::now();
    let latencies = quiet(pool, n, hold).await?;
    let rate = (done.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await?;
    }
    Ok((latencies, rate))
}

fn p(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let rounds = env("BENCH_ROUNDS", 5);
    let n = env("BENCH_QUIET", 200);
    let hold = env("BENCH_HOLD_MS", 2) as f64 / 1000.0;
    let cluster = TestCluster::shared().await?;
    let db = cluster.create_database().await?;
    let mut owner = PgConnection::connect(db.owner_url()).await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE items (id int NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
         INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN 'quiet' ELSE 'flood' END
           FROM generate_series(1, 1000) g;
         {}",
        RlsPolicy::new("items", "tenant_id")
            .grant_to(APP_ROLE)
            .sql()
    ))
    .execute(&mut owner)
    .await?;
    owner.close().await?;
    let builder = || {
        TenantPool::builder()
            .max_connections(POOL_SIZE)
            .min_connections(POOL_SIZE)
    };
    let fifo = builder().fair_shares(None).connect(db.app_url()).await?;
    let fair = builder()
        .fair_shares(Some(FairShares::new()))
        .connect(db.app_url())
        .await?;
    println!(
        "fairness: pool of {POOL_SIZE}, flood of {FLOOD_TASKS} tasks, {n} quiet transactions \
         per measurement, {rounds} rounds, each transaction holds its connection {:.0} ms; \
         load average before: {}",
        hold * 1000.0,
        load_average()
    );
    let (mut alone, mut fifo_q, mut fair_q) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fifo_rate, mut fair_rate) = (Vec::new(), Vec::new());
    // Warm up both pools.
    quiet(&fifo, 20, hold).await?;
    quiet(&fair, 20, hold).await?;
    for _ in 0..rounds {
        alone.extend(quiet(&fair, n, hold).await?);
        let (l, r) = flooded(&fifo, n, hold).await?;
        fifo_q.extend(l);
        fifo_rate.push(r);
        let (l, r) = flooded(&fair, n, hold).await?;
        fair_q.extend(l);
        fair_rate.push(r);
    }
    for v in [&mut alone, &mut fifo_q, &mut fair_q] {
        v.sort();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (alone_p99, fifo_p99, fair_p99) = (p(&alone, 0.99), p(&fifo_q, 0.99), p(&fair_q, 0.99));
    println!(
        "quiet alone:         p50 {:6.2} ms  p99 {:6.2} ms",
        ms(p(&alone, 0.5)),
        ms(alone_p99)
    );
    println!(
        "quiet flooded, fifo: p50 {:6.2} ms  p99 {:6.2} ms  flood {:7.0} tx/s",
        ms(p(&fifo_q, 0.5)),
        ms(fifo_p99),
        median(&mut fifo_rate)
    );
    println!(
        "quiet flooded, fair: p50 {:6.2} ms  p99 {:6.2} ms  flood {:7.0} tx/s",
        ms(p(&fair_q, 0.5)),
        ms(fair_p99),
        median(&mut fair_rate)
    );
    if let Some(f) = fair.figures_of(&tenant_core::TenantId::parse("flood")?) {
        println!(
            "flood under fair shares: {} begins waited for their turn, {:.1} s in all, {} refused",
            f.waited,
            f.wait_time.as_secs_f64(),
            f.refused
        );
    }
    println!("load average after: {}", load_average());
    println!(
        "RATIO quiet_p99_flooded/quiet_p99_alone fair: {:.2}",
        ms(fair_p99) / ms(alone_p99)
    );
    println!(
        "RATIO quiet_p99_flooded/quiet_p99_alone fifo: {:.2}",
        ms(fifo_p99) / ms(alone_p99)
    );
    println!(
        "RATIO flood_throughput fair/fifo: {:.2}",
        median(&mut fair_rate) / median(&mut fifo_rate)
    );
    Ok(())
}
