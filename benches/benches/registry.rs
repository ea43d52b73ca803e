//! The tenant registry's validator per request: a cached validation next to
//! an uncached one, and plain `validate()` (identifier rules only) as the
//! floor.
//!
//! Every variant validates a raw context for one of 32 registered, active
//! tenants (round robin), the way `#[with_context]` does under a layer with
//! the registry as its validator:
//!
//! 1. `bare`: `raw.validate()`, no validator (what a pool that requires
//!    authorized contexts refuses);
//! 2. `cached`: `raw.validate_with(&registry)` inside the scope of the
//!    tenant's authenticated caller (as `ContextLayer` runs a request),
//!    with every tenant in the registry's cache (a hit: no database round
//!    trip);
//! 3. `uncached`: the same after `registry.invalidate(tenant)`, so every
//!    validation reads the registry (one tenant transaction on the
//!    throwaway PostgreSQL, or `TENANT_TESTING_DATABASE_URL`, see `tenant_testing`).
//!    The invalidation is inside the measured time; it costs far less than
//!    the round trip.
//!
//! The variants are interleaved over several rounds; each line reports the
//! median over rounds of the mean time per validation, and the ratio is the
//! median of the per-round ratios (both sides measured in the same round):
//! `RATIO uncached/cached: 250.0`.
//!
//! Run: `cargo bench -p tenant-benches --bench registry`.
//! Environment: `BENCH_ROUNDS` (default 21).

use std::time::Instant;

use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Incoming, TenantId, Validated};
use tenant_sqlx::registry::{RegistrySchema, TenantRegistry};
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE};

const TENANTS: usize = 32;
const CACHED_PER_ROUND: usize = 20_000;
const UNCACHED_PER_ROUND: usize = 400;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let cluster = TestCluster::from_env().await?;
    let db = cluster.create_database().await?;
    let mut owner = PgConnection::connect(db.owner_url()).await?;
    sqlx::raw_sql(&RegistrySchema::new().grant_to(APP_ROLE).sql())
        .execute(&mut owner)
        .await?;
    owner.close().await?;
    let mut admin = PgConnection::connect(db.admin_url()).await?;
    sqlx::query(
        "INSERT INTO tenants (tenant_id) SELECT 'tenant-' || g FROM generate_series(1, $1) g",
    )
    .bind(TENANTS as i32)
    .execute(&mut admin)
    .await?;
    admin.close().await?;

    let pool = TenantPool::builder()
        .max_connections(4)
        .require_authorized(true)
        .connect(db.app_url())
        .await?;
    let registry = TenantRegistry::new(pool.clone());
    let raws: Vec<Ctx<tenant_core::Unvalidated>> = (1..=TENANTS)
        .map(|i| Ctx::unvalidated().with_tenant(format!("tenant-{i}")))
        .collect();
    let ids: Vec<TenantId> = (1..=TENANTS)
        .map(|i| TenantId::parse(&format!("tenant-{i}")))
        .collect::<Result<_, _>>()?;
    // The authenticated caller of each tenant, as `ContextLayer` puts one in
    // scope for a request resolved from a verified token: a validator only
    // authorizes a context inside its caller's scope.
    let callers: Vec<Incoming> = raws
        .iter()
        .map(|raw| {
            let caller = raw
                .validate::<Validated>()?
                .trust("bench: the caller authenticated for this tenant");
            Ok(Incoming::on_behalf_of(&caller))
        })
        .collect::<Result<_, tenant_core::ContextError>>()?;
    // Warm the cache and the pool.
    for (raw, caller) in raws.iter().zip(&callers) {
        caller
            .clone()
            .scope(raw.validate_with::<Validated>(&registry))
            .await?;
    }

    let (mut bare, mut cached, mut uncached, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        for i in 0..CACHED_PER_ROUND {
            std::hint::black_box(raws[i % TENANTS].validate::<Validated>()?);
        }
        let b = t.elapsed().as_nanos() as f64 / CACHED_PER_ROUND as f64;

        let t = Instant::now();
        for i in 0..CACHED_PER_ROUND {
            let ctx = callers[i % TENANTS]
                .clone()
                .scope(raws[i % TENANTS].validate_with::<Validated>(&registry))
                .await?;
            std::hint::black_box(ctx);
        }
        let c = t.elapsed().as_nanos() as f64 / CACHED_PER_ROUND as f64;

        let lookups = registry.lookups();
        let t = Instant::now();
        for i in 0..UNCACHED_PER_ROUND {
            registry.invalidate(&ids[i % TENANTS]).await;
            let ctx = callers[i % TENANTS]
                .clone()
                .scope(raws[i % TENANTS].validate_with::<Validated>(&registry))
                .await?;
            std::hint::black_box(ctx);
        }
        let u = t.elapsed().as_nanos() as f64 / UNCACHED_PER_ROUND as f64;
        // Every uncached validation really read the registry.
        assert_eq!(registry.lookups() - lookups, UNCACHED_PER_ROUND as u64);
        eprintln!("round {round}: bare {b:.0} ns, cached {c:.0} ns, uncached {u:.0} ns");
        bare.push(b);
        cached.push(c);
        uncached.push(u);
        ratios.push(u / c);
    }
    let cached_over_bare: Vec<f64> = cached.iter().zip(&bare).map(|(c, b)| c / b).collect();
    println!("registry validation, per request (median of {rounds} rounds):");
    println!("  bare validate()           {:>12.0} ns", median(bare));
    println!("  registry, cached          {:>12.0} ns", median(cached));
    println!("  registry, uncached        {:>12.0} ns", median(uncached));
    println!("RATIO uncached/cached: {:.1}", median(ratios));
    println!("RATIO cached/bare: {:.1}", median(cached_over_bare));
    pool.close().await;
    drop(db);
    drop(cluster);
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("registry bench failed: {e}");
        std::process::exit(1);
    }
}
