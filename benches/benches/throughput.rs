//! Transaction throughput: our `TenantTx` against a plain sqlx transaction and
//! against the closest peer crate, `tenaxum`'s `begin_tenant`.
//!
//! Every variant runs the same work, one short transaction that reads one row
//! by primary key, on a pool with the same settings, against the same
//! throwaway PostgreSQL (or `TENANT_TESTING_DATABASE_URL`, see `tenant_testing`):
//!
//! 1. `plain_sqlx`: `PgPool::begin`, the SELECT, `commit`, on a table
//!    without RLS (in a database of its own, so the RLS database passes the
//!    start-up audit);
//! 2. `tenant_tx`: `TenantPool::begin(&ctx)`, the SELECT, `commit`, on an
//!    identical table with RLS (FORCE, one USING/WITH CHECK policy);
//! 3. `tenaxum`: `Tenancy::begin_tenant` (BEGIN, then
//!    `SELECT set_config(..., true)`), the SELECT, `commit`, on the RLS table;
//! 4. `sqlx_set_local`, a reference: plain sqlx with
//!    `begin_with("BEGIN; SET LOCAL app.current_tenant = '…'")` on the RLS
//!    table, i.e. RLS and a one-round-trip tenant by hand, without this
//!    crate;
//! 5. `plain_sqlx_again`, a calibration: a second pool identical to the
//!    first, so `plain_sqlx_again/plain_sqlx` shows how far from 1.00 the
//!    bench itself moves a ratio;
//! 6. `tenant_tx_fifo`: `tenant_tx` on a pool without fair shares
//!    (`fair_shares(None)`), so `tenant_tx/tenant_tx_fifo` is what the
//!    per-tenant admission costs;
//! 7. `tenant_tx_hardened`: `TenantTx` in hardened mode (a proof in every
//!    begin message, policies that call the guard function), on an
//!    identical table in a database with the guard installed.
//!
//! All pools have the same settings (16 connections, all opened up front,
//! sqlx's defaults otherwise). A plain sqlx pool (0.8.6) pings each
//! connection before handing it out and again when it takes it back; a
//! `TenantPool` does neither (its `BEGIN` is the check, see
//! `TenantPoolBuilder::test_before_acquire`, and a connection whose
//! transaction ended cleanly goes straight to the next `begin`, see
//! `TenantPool`): those round trips are part of what is measured.
//!
//! The variants are interleaved over several rounds, in a new random order
//! each round (seeded, so a run is repeatable in its order).
//! Each variant's median throughput is reported, and each ratio is the median
//! of the per-round ratios (the two sides measured in the same round, so a
//! noisy neighbour slows both). The throughput ratios come last, one line
//! each: `RATIO tenant_tx/plain_sqlx tasks=1: 0.97`, then the load average
//! the bench ran under. `RATIO tenant_tx/sqlx_set_local` compares with RLS
//! written by hand with plain sqlx.
//!
//! Run: `cargo bench -p tenant-benches --bench throughput`.
//! Environment: `BENCH_ROUNDS` (default 31), `BENCH_TXS` (transactions per
//! measurement, default 800).

use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE};

const TENANTS: usize = 32;
const ROWS_PER_TENANT: usize = 64;
const POOL_SIZE: u32 = 16;
const CONCURRENCY: [usize; 2] = [1, 16];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    PlainSqlx,
    TenantTx,
    Tenaxum,
    SqlxSetLocal,
    PlainSqlxAgain,
    TenantTxHardened,
    TenantTxUnkept,
    TenantTxFifo,
}

impl Variant {
    /// In discriminant order: `samples[variant as usize]`.
    const ALL: [Variant; 8] = [
        Variant::PlainSqlx,
        Variant::TenantTx,
        Variant::Tenaxum,
        Variant::SqlxSetLocal,
        Variant::PlainSqlxAgain,
        Variant::TenantTxHardened,
        Variant::TenantTxUnkept,
        Variant::TenantTxFifo,
    ];
    fn name(self) -> &'static str {
        match self {
            Variant::PlainSqlx => "plain_sqlx",
            Variant::TenantTx => "tenant_tx",
            Variant::Tenaxum => "tenaxum",
            Variant::SqlxSetLocal => "sqlx_set_local",
            Variant::PlainSqlxAgain => "plain_sqlx_again",
            Variant::TenantTxHardened => "tenant_tx_hardened",
            Variant::TenantTxUnkept => "tenant_tx_unkept",
            Variant::TenantTxFifo => "tenant_tx_fifo",
        }
    }
}

struct Setup {
    plain: PgPool,
    plain_again: PgPool,
    ours: TenantPool,
    unkept: TenantPool,
    fifo: TenantPool,
    hardened: TenantPool,
    peer: PgPool,
    peer_tenancy: tenaxum::Tenancy,
    ctxs: Vec<Ctx<Validated>>,
    peer_ids: Vec<tenaxum::TenantId>,
}

fn tenant_name(t: usize) -> String {
    format!("tenant-{t:02}")
}

/// Row ids of tenant `t` are `t, t + TENANTS, t + 2 * TENANTS, ...`.
fn row_id(t: usize, i: usize) -> i32 {
    (t + TENANTS * (i % ROWS_PER_TENANT)) as i32
}

/// The hardened pool's secret (bench data, not a real secret).
const GUARD_SECRET: &[u8] = b"throughput-bench-guard-secret-0123456789";

async fn create_table(
    owner_url: &str,
    rls: bool,
    hardened: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut owner = PgConnection::connect(owner_url).await?;
    sqlx::raw_sql(
        "CREATE TABLE items (id int NOT NULL, tenant_id text NOT NULL, body text NOT NULL, \
         PRIMARY KEY (tenant_id, id)); CREATE INDEX items_id ON items (id)",
    )
    .execute(&mut owner)
    .await?;
    sqlx::query(
        "INSERT INTO items (id, tenant_id, body) \
         SELECT g, 'tenant-' || lpad((g % $1)::text, 2, '0'), md5(g::text) \
         FROM generate_series(0, $2 - 1) g",
    )
    .bind(TENANTS as i32)
    .bind((TENANTS * ROWS_PER_TENANT) as i32)
    .execute(&mut owner)
    .await?;
    let grants = if rls {
        RlsPolicy::new("items", "tenant_id")
            .hardened(hardened)
            .grant_to(APP_ROLE)
            .sql()
    } else {
        format!("GRANT SELECT ON items TO {APP_ROLE};")
    };
    sqlx::raw_sql(&grants).execute(&mut owner).await?;
    sqlx::raw_sql("ANALYZE items").execute(&mut owner).await?;
    Ok(())
}

async fn setup(cluster: &TestCluster) -> Result<Setup, Box<dyn std::error::Error>> {
    let plain_db = cluster.create_database().await?;
    let rls_db = cluster.create_database().await?;
    let hardened_db = cluster.create_database().await?;
    hardened_db.install_guard(GUARD_SECRET).await?;
    create_table(plain_db.owner_url(), false, false).await?;
    create_table(rls_db.owner_url(), true, false).await?;
    create_table(hardened_db.owner_url(), true, true).await?;

    let options = || {
        PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(POOL_SIZE)
    };
    let plain = options().connect(plain_db.app_url()).await?;
    let plain_again = options().connect(plain_db.app_url()).await?;
    let peer = options().connect(rls_db.app_url()).await?;
    let ours = TenantPool::builder()
        .max_connections(POOL_SIZE)
        .min_connections(POOL_SIZE)
        .connect(rls_db.app_url())
        .await?;
    // The same as `ours` without the kept-connection hand-off: every
    // connection goes back through sqlx's pool (and its release ping).
    let unkept = TenantPool::builder()
        .max_connections(POOL_SIZE)
        .min_connections(POOL_SIZE)
        .keep_connections(false)
        .connect(rls_db.app_url())
        .await?;
    // The same as `ours` without fair shares: connections first come,
    // first served, whatever the tenant.
    let fifo = TenantPool::builder()
        .max_connections(POOL_SIZE)
        .min_connections(POOL_SIZE)
        .fair_shares(None)
        .connect(rls_db.app_url())
        .await?;
    let hardened = TenantPool::builder()
        .max_connections(POOL_SIZE)
        .min_connections(POOL_SIZE)
        .hardened(GuardSecret::new(GUARD_SECRET)?)
        .connect(hardened_db.app_url())
        .await?;
    let ctxs = (0..TENANTS)
        .map(|t| Ctx::unvalidated().with_tenant(tenant_name(t)).validate())
        .collect::<Result<Vec<_>, _>>()?;
    let peer_ids = (0..TENANTS)
        .map(|t| tenaxum::TenantId::new(tenant_name(t)))
        .collect();
    Ok(Setup {
        plain,
        plain_again,
        ours,
        unkept,
        fifo,
        hardened,
        peer,
        peer_tenancy: tenaxum::Tenancy::new().guc("app.current_tenant"),
        ctxs,
        peer_ids,
    })
}

const SELECT: &str = "SELECT body FROM items WHERE id = $1";

/// One transaction of `variant` for tenant `t`, reading its `i`-th row.
async fn one(s: &Setup, variant: Variant, t: usize, i: usize) {
    let id = row_id(t, i);
    let body: Option<String> = match variant {
        Variant::PlainSqlx | Variant::PlainSqlxAgain => {
            let pool = if variant == Variant::PlainSqlx {
                &s.plain
            } else {
                &s.plain_again
            };
            let mut tx = pool.begin().await.expect("plain begin");
            let body = sqlx::query_scalar(SELECT)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .expect("plain select");
            tx.commit().await.expect("plain commit");
            body
        }
        Variant::TenantTx
        | Variant::TenantTxHardened
        | Variant::TenantTxUnkept
        | Variant::TenantTxFifo => {
            let pool = match variant {
                Variant::TenantTx => &s.ours,
                Variant::TenantTxHardened => &s.hardened,
                Variant::TenantTxFifo => &s.fifo,
                _ => &s.unkept,
            };
            let mut tx = pool.begin(&s.ctxs[t]).await.expect("tenant_tx begin");
            let body = sqlx::query_scalar(SELECT)
                .bind(id)
                .fetch_optional(&mut tx)
                .await
                .expect("tenant_tx select");
            tx.commit().await.expect("tenant_tx commit");
            body
        }
        Variant::SqlxSetLocal => {
            // The reference: what a hand-written one-round-trip tenant
            // transaction costs with plain sqlx (tenant names are fixed,
            // trusted bench data, so inlining them is fine here).
            let begin = format!("BEGIN; SET LOCAL app.current_tenant = '{}'", tenant_name(t));
            let mut tx = s
                .peer
                .begin_with(begin)
                .await
                .expect("sqlx_set_local begin");
            let body = sqlx::query_scalar(SELECT)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .expect("sqlx_set_local select");
            tx.commit().await.expect("sqlx_set_local commit");
            body
        }
        Variant::Tenaxum => {
            let mut tx = s
                .peer_tenancy
                .begin_tenant(&s.peer, &s.peer_ids[t])
                .await
                .expect("tenaxum begin");
            let body = sqlx::query_scalar(SELECT)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .expect("tenaxum select");
            tx.commit().await.expect("tenaxum commit");
            body
        }
    };
    // Every variant must really find the row (RLS lets the tenant see it):
    // a variant that reads nothing would be measuring a different thing.
    assert!(
        body.is_some(),
        "{variant:?} found no row {id} for tenant {t}"
    );
}

/// Runs `txs` transactions of `variant` split over `tasks` tasks and returns
/// the throughput in transactions per second.
async fn measure(s: &Arc<Setup>, variant: Variant, tasks: usize, txs: usize) -> f64 {
    let per_task = txs / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|k| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                for i in 0..per_task {
                    one(&s, variant, (k + i) % TENANTS, i).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("bench task panicked");
    }
    (per_task * tasks) as f64 / start.elapsed().as_secs_f64()
}

/// Fisher-Yates with xorshift64: a fresh order every round, so that no
/// variant always runs right after the same other one (which pool ran just
/// before, and how busy it left both processes, shifts a measurement by
/// more than the differences measured here).
fn shuffle(order: &mut [usize], rng: &mut u64) {
    for i in (1..order.len()).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        order.swap(i, (*rng % (i as u64 + 1)) as usize);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// Throughput of `variant` relative to `base` in each round (the two were
/// measured back to back), as a median: a neighbour that slows one round
/// slows both sides of its ratio.
fn paired_ratio(samples: &[Vec<f64>], variant: Variant, base: Variant) -> f64 {
    let (v, b) = (&samples[variant as usize], &samples[base as usize]);
    let mut ratios: Vec<f64> = v.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&mut ratios)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_usize("BENCH_ROUNDS", 31);
    let txs = env_usize("BENCH_TXS", 800);
    let load_before = load_average();
    let cluster = TestCluster::from_env().await?;
    let s = Arc::new(setup(&cluster).await?);

    // Warm every pool and the server's caches.
    for variant in Variant::ALL {
        measure(&s, variant, 16, 16 * 20).await;
    }

    println!(
        "throughput bench: {rounds} rounds x {txs} transactions per variant and concurrency; \
         pool of {POOL_SIZE} connections; one-row SELECT by primary key"
    );
    let mut ratios = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for tasks in CONCURRENCY {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
        let mut order: Vec<usize> = (0..Variant::ALL.len()).collect();
        for _ in 0..rounds {
            shuffle(&mut order, &mut rng);
            for &idx in &order {
                let tps = measure(&s, Variant::ALL[idx], tasks, txs).await;
                samples[idx].push(tps);
            }
        }
        for (variant, v) in Variant::ALL.iter().zip(&samples) {
            let mut v = v.clone();
            let (lo, hi) = (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max),
            );
            println!(
                "{:<15} tasks={:<2}  median {:>8.0} tx/s  (min {:>8.0}, max {:>8.0})",
                variant.name(),
                tasks,
                median(&mut v),
                lo,
                hi
            );
        }
        println!(
            "  calibration: plain_sqlx_again/plain_sqlx tasks={tasks}: {:.2} \
             (two identical pools: what the bench itself adds to a ratio)",
            paired_ratio(&samples, Variant::PlainSqlxAgain, Variant::PlainSqlx)
        );
        println!(
            "  reference: sqlx_set_local/plain_sqlx tasks={tasks}: {:.2} \
             (RLS and a tenant in the BEGIN message, by hand with plain sqlx)",
            paired_ratio(&samples, Variant::SqlxSetLocal, Variant::PlainSqlx)
        );
        for base in [Variant::PlainSqlx, Variant::SqlxSetLocal, Variant::Tenaxum] {
            ratios.push((
                Variant::TenantTx,
                base,
                tasks,
                paired_ratio(&samples, Variant::TenantTx, base),
            ));
        }
        ratios.push((
            Variant::TenantTxHardened,
            Variant::TenantTx,
            tasks,
            paired_ratio(&samples, Variant::TenantTxHardened, Variant::TenantTx),
        ));
        ratios.push((
            Variant::TenantTxUnkept,
            Variant::TenantTx,
            tasks,
            paired_ratio(&samples, Variant::TenantTxUnkept, Variant::TenantTx),
        ));
        ratios.push((
            Variant::TenantTx,
            Variant::TenantTxFifo,
            tasks,
            paired_ratio(&samples, Variant::TenantTx, Variant::TenantTxFifo),
        ));
    }
    for (variant, base) in [
        (Variant::TenantTx, Variant::PlainSqlx),
        (Variant::TenantTx, Variant::SqlxSetLocal),
        (Variant::TenantTx, Variant::Tenaxum),
        (Variant::TenantTxHardened, Variant::TenantTx),
        (Variant::TenantTxUnkept, Variant::TenantTx),
        (Variant::TenantTx, Variant::TenantTxFifo),
    ] {
        for &(v, b, tasks, ratio) in &ratios {
            if (v, b) == (variant, base) {
                println!(
                    "RATIO {}/{} tasks={tasks}: {ratio:.2}",
                    variant.name(),
                    base.name()
                );
            }
        }
    }
    println!(
        "load average before: {load_before}; after: {} (wall-clock ratios move with it: \
         compare with the server_cost bench's instruction counts)",
        load_average()
    );
    s.plain.close().await;
    s.plain_again.close().await;
    s.peer.close().await;
    s.ours.close().await;
    s.hardened.close().await;
    s.unkept.close().await;
    s.fifo.close().await;
    drop(cluster);
    Ok(())
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    if let Err(e) = rt.block_on(run()) {
        eprintln!("throughput bench failed: {e}");
        std::process::exit(1);
    }
    eprintln!("(bench took {:.0?})", started.elapsed());
}
