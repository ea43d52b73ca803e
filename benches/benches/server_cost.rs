//! The server's work per transaction, in instructions: the same one-row
//! transaction written by hand with plain sqlx (`minimal`), through a
//! `TenantTx`, and through a `TenantTx` in hardened mode.
//!
//! Wall-clock throughput on a shared machine moves by ±25% between runs;
//! the number of instructions a PostgreSQL backend executes for one
//! transaction does not (two runs agree to within about 1%). This bench
//! starts a throwaway cluster whose server runs under
//! `valgrind --tool=cachegrind` (every backend is a fork of it, so every
//! backend is counted) and, for each variant, runs `W` transactions on one
//! backend and `W + N` on another: the difference of the two backends'
//! totals, divided by `N`, is the cost of one transaction, without the cost
//! of connecting, of the start-up audit or of the first, cold
//! transactions.
//!
//! Variants, each a one-row SELECT by primary key on an RLS table (and a
//! `_5` form with five such SELECTs in the transaction):
//!
//! * `minimal`: `BEGIN; SET LOCAL app.current_tenant = '…'` in one message,
//!   the SELECT (a prepared statement, as sqlx runs it), `COMMIT`: RLS by
//!   hand, the least a tenant transaction can cost;
//! * `tenant_tx`: `TenantPool::begin`, the SELECT, `commit`;
//! * `tenant_tx_pinned`: `tenant_tx` on connections whose start-up
//!   options pin the `default_transaction_*` settings, so that the begin
//!   message need not spell the transaction characteristics out;
//! * `tenant_tx_hardened`: the same in hardened mode (a proof in the begin
//!   message, policies that call the guard function).
//!
//! It prints `INSTR <variant>: <instructions per transaction>` and two
//! ratios, throughput equivalents like every `RATIO` of the project (higher
//! is better): `RATIO instr tenant_tx/minimal` (instructions of `minimal`
//! divided by those of `tenant_tx`) and
//! `RATIO instr tenant_tx_hardened/tenant_tx`.
//!
//! Run: `cargo bench -p tenant-benches --bench server_cost`. Needs
//! `valgrind` (`VALGRIND` names another binary); without it the bench says
//! so and exits successfully. `PG_BIN_DIR` picks the PostgreSQL binaries as
//! for the tests. Environment: `BENCH_TXS` (`N`, default 200), `BENCH_WARM`
//! (`W`, default 50).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE, DEFAULT_BIN_DIR};

type BoxError = Box<dyn std::error::Error>;

const TENANTS: usize = 8;
const ROWS_PER_TENANT: usize = 64;
/// The hardened pool's secret (bench data, not a real secret).
const GUARD_SECRET: &[u8] = b"server-cost-bench-guard-secret-0123456789";
const SELECT: &str = "SELECT body FROM items WHERE id = $1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Minimal,
    TenantTx,
    /// `TenantTx` on connections whose start-up options pin the transaction
    /// characteristics: the begin is a bare `BEGIN`.
    Pinned,
    Hardened,
}

#[derive(Clone, Copy, Debug)]
struct Variant {
    side: Side,
    /// SELECTs per transaction.
    statements: usize,
}

impl Variant {
    fn name(self) -> String {
        let base = match self.side {
            Side::Minimal => "minimal",
            Side::TenantTx => "tenant_tx",
            Side::Pinned => "tenant_tx_pinned",
            Side::Hardened => "tenant_tx_hardened",
        };
        if self.statements == 1 {
            base.to_owned()
        } else {
            format!("{base}_{}", self.statements)
        }
    }
}

fn tenant_name(t: usize) -> String {
    format!("tenant-{t}")
}

fn row_id(t: usize, i: usize) -> i32 {
    (t + TENANTS * (i % ROWS_PER_TENANT)) as i32
}

/// A directory holding `initdb` (a link to the real one) and `postgres`, a
/// script that runs the real server under cachegrind with one output file
/// per process in `out`.
fn wrapped_bin_dir(valgrind: &str, root: &Path) -> Result<(PathBuf, PathBuf), BoxError> {
    let real = std::env::var_os("PG_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR));
    let bin = root.join("bin");
    let out = root.join("cachegrind");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&out)?;
    // The server may run as `postgres` (when the bench runs as root).
    for dir in [root, &bin, &out] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    }
    std::os::unix::fs::symlink(real.join("initdb"), bin.join("initdb"))?;
    let script = format!(
        "#!/bin/sh\n\
         # The server under cachegrind; autovacuum off so that no background\n\
         # worker starts in the middle of a measurement.\n\
         exec {valgrind} --tool=cachegrind --cache-sim=no --branch-sim=no \
         --cachegrind-out-file={out}/cg.%p --log-file={out}/vg.%p \
         {postgres} \"$@\" -c autovacuum=off\n",
        out = out.display(),
        postgres = real.join("postgres").display(),
    );
    let postgres = bin.join("postgres");
    std::fs::write(&postgres, script)?;
    std::fs::set_permissions(&postgres, std::fs::Permissions::from_mode(0o755))?;
    Ok((bin, out))
}

/// The instructions backend `pid` executed in its life, once it has exited
/// and cachegrind has written them.
async fn backend_instructions(out: &Path, pid: i32) -> Result<u64, BoxError> {
    let file = out.join(format!("cg.{pid}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(line) = text.lines().find(|l| l.starts_with("summary:")) {
                let n = line
                    .split_whitespace()
                    .nth(1)
                    .ok_or("empty cachegrind summary")?;
                return Ok(n.parse()?);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no cachegrind summary for backend {pid} in {}",
                file.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_table(db: &TestDatabase, hardened: bool) -> Result<(), BoxError> {
    let mut owner = PgConnection::connect(db.owner_url()).await?;
    sqlx::raw_sql(
        "CREATE TABLE items (id int NOT NULL, tenant_id text NOT NULL, body text NOT NULL, \
         PRIMARY KEY (tenant_id, id)); CREATE INDEX items_id ON items (id)",
    )
    .execute(&mut owner)
    .await?;
    sqlx::query(
        "INSERT INTO items (id, tenant_id, body) \
         SELECT g, 'tenant-' || (g % $1), md5(g::text) FROM generate_series(0, $2 - 1) g",
    )
    .bind(TENANTS as i32)
    .bind((TENANTS * ROWS_PER_TENANT) as i32)
    .execute(&mut owner)
    .await?;
    let policy = RlsPolicy::new("items", "tenant_id")
        .hardened(hardened)
        .grant_to(APP_ROLE)
        .sql();
    sqlx::raw_sql(&policy).execute(&mut owner).await?;
    sqlx::raw_sql("VACUUM ANALYZE items")
        .execute(&mut owner)
        .await?;
    owner.close().await?;
    Ok(())
}

/// Runs `txs` transactions of `variant` on a backend of its own, then
/// closes it; returns that backend's pid.
async fn run_backend(
    variant: Variant,
    url: &str,
    ctxs: &[Ctx<Validated>],
    txs: usize,
) -> Result<i32, BoxError> {
    match variant.side {
        Side::Minimal => {
            let mut conn = PgConnection::connect(url).await?;
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await?;
            for i in 0..txs {
                let t = i % TENANTS;
                // Trusted bench data: inlining the name is fine here.
                let begin = format!("BEGIN; SET LOCAL app.current_tenant = '{}'", tenant_name(t));
                sqlx::raw_sql(&begin).execute(&mut conn).await?;
                for k in 0..variant.statements {
                    let body: Option<String> = sqlx::query_scalar(SELECT)
                        .bind(row_id(t, i + k))
                        .fetch_optional(&mut conn)
                        .await?;
                    assert!(body.is_some(), "minimal: no row for tenant {t}");
                }
                sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
            }
            conn.close().await?;
            Ok(pid)
        }
        Side::TenantTx | Side::Pinned | Side::Hardened => {
            let mut builder = TenantPool::builder().max_connections(1);
            if variant.side == Side::Hardened {
                builder = builder.hardened(GuardSecret::new(GUARD_SECRET)?);
            }
            let mut options: sqlx::postgres::PgConnectOptions = url.parse()?;
            if variant.side == Side::Pinned {
                options = options.options([
                    ("default_transaction_isolation", "read\\ committed"),
                    ("default_transaction_read_only", "off"),
                    ("default_transaction_deferrable", "off"),
                ]);
            }
            let pool = builder.connect_with(options).await?;
            let pid: i32 = {
                let mut tx = pool.begin(&ctxs[0]).await?;
                let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut tx)
                    .await?;
                tx.commit().await?;
                pid
            };
            for i in 0..txs {
                let t = i % TENANTS;
                let mut tx = pool.begin(&ctxs[t]).await?;
                for k in 0..variant.statements {
                    let body: Option<String> = sqlx::query_scalar(SELECT)
                        .bind(row_id(t, i + k))
                        .fetch_optional(&mut tx)
                        .await?;
                    assert!(body.is_some(), "{}: no row for tenant {t}", variant.name());
                }
                tx.commit().await?;
            }
            pool.close().await;
            Ok(pid)
        }
    }
}

/// Instructions per transaction of `variant`: two backends, `warm` and
/// `warm + txs` transactions, the difference over `txs`.
async fn per_transaction(
    variant: Variant,
    url: &str,
    out: &Path,
    ctxs: &[Ctx<Validated>],
    warm: usize,
    txs: usize,
) -> Result<f64, BoxError> {
    let short = run_backend(variant, url, ctxs, warm).await?;
    let short = backend_instructions(out, short).await?;
    let long = run_backend(variant, url, ctxs, warm + txs).await?;
    let long = backend_instructions(out, long).await?;
    Ok((long as f64 - short as f64) / txs as f64)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

async fn run() -> Result<(), BoxError> {
    let valgrind = std::env::var("VALGRIND").unwrap_or_else(|_| "valgrind".to_owned());
    let found = std::process::Command::new(&valgrind)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        println!("server_cost bench: `{valgrind}` not found; install valgrind to count the server's instructions");
        return Ok(());
    }
    let txs = env_usize("BENCH_TXS", 200);
    let warm = env_usize("BENCH_WARM", 50);
    let root = tempfile::Builder::new().prefix("tenant-cg-").tempdir()?;
    let (bin, out) = wrapped_bin_dir(&valgrind, root.path())?;
    let cluster = TestCluster::builder().bin_dir(&bin).start().await?;
    let version = cluster.server_version_num().await?;
    let rls_db = cluster.create_database().await?;
    let hardened_db = cluster.create_database().await?;
    hardened_db.install_guard(GUARD_SECRET).await?;
    create_table(&rls_db, false).await?;
    create_table(&hardened_db, true).await?;
    let ctxs = (0..TENANTS)
        .map(|t| Ctx::unvalidated().with_tenant(tenant_name(t)).validate())
        .collect::<Result<Vec<_>, _>>()?;

    println!(
        "server_cost bench: PostgreSQL {version} under cachegrind; per variant, \
         ({warm} + {txs}) - {warm} transactions on two backends; one-row SELECT by primary key"
    );
    let mut instr = std::collections::HashMap::new();
    let variants = [
        (Side::Minimal, 1),
        (Side::TenantTx, 1),
        (Side::Pinned, 1),
        (Side::Hardened, 1),
        (Side::Minimal, 5),
        (Side::TenantTx, 5),
        (Side::Hardened, 5),
    ];
    {
        for (side, statements) in variants {
            let variant = Variant { side, statements };
            let url = match side {
                Side::Hardened => hardened_db.app_url(),
                _ => rls_db.app_url(),
            };
            let n = per_transaction(variant, url, &out, &ctxs, warm, txs).await?;
            println!("INSTR {}: {n:.0}", variant.name());
            instr.insert(variant.name(), n);
        }
    }
    let ratio = |a: &str, b: &str| instr[b] / instr[a];
    println!(
        "RATIO instr tenant_tx/minimal: {:.2}",
        ratio("tenant_tx", "minimal")
    );
    println!(
        "RATIO instr tenant_tx_hardened/tenant_tx: {:.2}",
        ratio("tenant_tx_hardened", "tenant_tx")
    );
    println!(
        "RATIO instr tenant_tx_pinned/minimal: {:.2} (transaction characteristics pinned at connect)",
        ratio("tenant_tx_pinned", "minimal")
    );
    println!(
        "RATIO instr tenant_tx_5/minimal_5: {:.2}",
        ratio("tenant_tx_5", "minimal_5")
    );
    println!(
        "RATIO instr tenant_tx_hardened_5/tenant_tx_5: {:.2}",
        ratio("tenant_tx_hardened_5", "tenant_tx_5")
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average: {} (instruction counts do not depend on it)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
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
        eprintln!("server_cost bench failed: {e}");
        std::process::exit(1);
    }
    eprintln!("(bench took {:.0?})", started.elapsed());
}
