//! Soak: 32 tenants x 64 tasks on pools of 1, 2 and 8 connections, more
//! than 50,000 operations with about 10% cancelled at a random await point.
//! No task ever sees another tenant's row, and no connection is left idle in
//! a transaction.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{poll_at_most, Fixture};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{Error, TenantPool};
use tenant_testing::TestCluster;

const TENANTS: usize = 32;
const TASKS_PER_TENANT: usize = 64;
const OPS_PER_TASK: usize = 9;
const POOL_SIZES: [u32; 3] = [1, 2, 8];
const ROWS_PER_TENANT: i64 = 4;
/// How often an operation gets a poll budget (1 to 4 polls) instead of
/// running to the end; some finish within it, so about 10% end cancelled.
const CANCEL_PROBABILITY: f64 = 0.12;

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    cancelled: AtomicU64,
    foreign_rows_seen: AtomicU64,
    wrong_setting_seen: AtomicU64,
    errors: AtomicU64,
}

fn tenant(i: usize) -> String {
    format!("soak-{i:02}")
}

async fn soak_fixture() -> Fixture {
    let cluster = TestCluster::shared().await.unwrap();
    let db = cluster.create_database().await.unwrap();
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    sqlx::raw_sql(&common::schema())
        .execute(&mut owner)
        .await
        .unwrap();
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    for i in 0..TENANTS {
        sqlx::query(
            "INSERT INTO notes (tenant_id, slug, body)
             SELECT $1, $1 || '-' || g, 'seed' FROM generate_series(1, $2) g",
        )
        .bind(tenant(i))
        .bind(ROWS_PER_TENANT)
        .execute(&mut admin)
        .await
        .unwrap();
    }
    Fixture { db, admin }
}

/// One operation for `ctx`'s tenant; returns (foreign rows seen, whether
/// the tenant setting was wrong).
async fn operation(
    pool: &TenantPool,
    ctx: &Ctx<Validated>,
    kind: u32,
    n: u64,
) -> Result<(u64, bool), Error> {
    let me = ctx.tenant_id().as_str();
    let mut tx = pool.begin(ctx).await?;
    let (setting, foreign): (String, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant'),
                (SELECT count(*) FROM notes WHERE tenant_id <> $1)",
    )
    .bind(me)
    .fetch_one(&mut tx)
    .await?;
    let mut foreign = foreign as u64;
    match kind {
        // Read every visible row and check its owner.
        0 => {
            let owners: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM notes")
                .fetch_all(&mut tx)
                .await?;
            foreign += owners.iter().filter(|o| *o != me).count() as u64;
            tx.commit().await?;
        }
        // Write a row, then roll it back (keeps the table small).
        1 => {
            sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'w')")
                .bind(me)
                .bind(format!("{me}-w-{n}"))
                .execute(&mut tx)
                .await?;
            tx.rollback().await?;
        }
        // Update one row by key, often another tenant's: only the
        // tenant's own key may match.
        _ => {
            let owner = (n as usize / 7) % TENANTS;
            let slug = format!("{}-{}", tenant(owner), n as i64 % ROWS_PER_TENANT + 1);
            let touched = sqlx::query("UPDATE notes SET body = $1 WHERE slug = $2")
                .bind(format!("u{n}"))
                .bind(&slug)
                .execute(&mut tx)
                .await?
                .rows_affected();
            if tenant(owner) != me {
                foreign += touched;
            }
            tx.commit().await?;
        }
    }
    Ok((foreign, setting != me))
}

async fn run_pool(fx: &mut Fixture, size: u32, seed: u64, tally: Arc<Tally>) {
    let pool = TenantPool::builder()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(300))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..TENANTS {
        for k in 0..TASKS_PER_TENANT {
            let pool = pool.clone();
            let tally = Arc::clone(&tally);
            let task_seed = seed ^ ((size as u64) << 40) ^ ((t as u64) << 20) ^ k as u64;
            tasks.push(tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(task_seed);
                let ctx: Ctx<Validated> = Ctx::unvalidated()
                    .with_tenant(tenant(t))
                    .validate()
                    .unwrap();
                for _ in 0..OPS_PER_TASK {
                    let kind = rng.random_range(0..3u32);
                    let n = rng.random::<u32>() as u64;
                    let op = operation(&pool, &ctx, kind, n);
                    let outcome = if rng.random_bool(CANCEL_PROBABILITY) {
                        poll_at_most(op, rng.random_range(1..=4)).await
                    } else {
                        Some(op.await)
                    };
                    tally.ops.fetch_add(1, Ordering::Relaxed);
                    match outcome {
                        None => {
                            tally.cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok((foreign, wrong))) => {
                            tally
                                .foreign_rows_seen
                                .fetch_add(foreign, Ordering::Relaxed);
                            tally
                                .wrong_setting_seen
                                .fetch_add(wrong as u64, Ordering::Relaxed);
                        }
                        Some(Err(e)) => {
                            eprintln!("operation failed: {e}");
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        fx.settle(&pool).await,
        0,
        "pool of {size}: connections left idle in transaction"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_many_tenants_with_cancellation() {
    let mut fx = soak_fixture().await;
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("soak seed {seed} (set SOAK_SEED to repeat)");
    let tally = Arc::new(Tally::default());
    for size in POOL_SIZES {
        let started = Instant::now();
        run_pool(&mut fx, size, seed, Arc::clone(&tally)).await;
        eprintln!(
            "pool of {size}: done in {:?}, {} operations so far",
            started.elapsed(),
            tally.ops.load(Ordering::Relaxed)
        );
    }

    let ops = tally.ops.load(Ordering::Relaxed);
    let cancelled = tally.cancelled.load(Ordering::Relaxed);
    eprintln!(
        "{ops} operations, {cancelled} cancelled, {} errors",
        tally.errors.load(Ordering::Relaxed)
    );
    assert!(ops >= 50_000, "{ops} operations");
    assert!(
        (ops / 20..=ops / 5).contains(&cancelled),
        "about 10% cancelled: {cancelled} of {ops}"
    );
    assert_eq!(tally.foreign_rows_seen.load(Ordering::Relaxed), 0);
    assert_eq!(tally.wrong_setting_seen.load(Ordering::Relaxed), 0);
    assert_eq!(tally.errors.load(Ordering::Relaxed), 0);
    let in_tx: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&mut fx.admin)
    .await
    .unwrap();
    assert_eq!(in_tx, 0);
    for i in 0..TENANTS {
        assert_eq!(fx.count(&tenant(i)).await, ROWS_PER_TENANT);
    }
}
