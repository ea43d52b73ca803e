//! One worker process for the crash tests: a relay and a worker on the
//! same database and Redis, killed with `kill -9` by the test or by itself
//! at a scheduled point. Configured by environment variables (see `main`);
//! stops gracefully when its standard input closes.

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_tests::worker_fixture::{kill_self, CrashAt, Handlers, GROUP};
use tenant_worker::{Relay, Worker};
use tokio::io::AsyncReadExt;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn num(name: &str, default: f64) -> f64 {
    var(name).parse().unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    // APP_URL, ADMIN_URL, REDIS_URL: where; MODE: `ours` or `check-then-set`;
    // CRASH_EVERY_NTH: crash on the nth handled event (0: never);
    // CRASH_AT: `before` or `after` commit for that one;
    // CRASH_P: probability of a crash per event, half before, half after;
    // RELAY_CRASH_P: probability of a crash between XADD and the relay's
    // commit; CRASH_LOG: file to append the crash point to.
    let pool = TenantPool::builder()
        .max_connections(8)
        .connect(&var("APP_URL"))
        .await
        .expect("pool");
    let client = redis::Client::open(var("REDIS_URL")).expect("redis url");
    let log_path = var("CRASH_LOG");
    let log = move |what: &str| {
        if !log_path.is_empty() {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
            {
                let _ = writeln!(f, "{what}");
            }
        }
    };
    let log = Arc::new(log);

    let relay_p = num("RELAY_CRASH_P", 0.0);
    let relay_log = log.clone();
    let relay = if var("RELAY") == "1" {
        let admin = AdminPool::connect(&var("ADMIN_URL")).await.expect("admin");
        let relay = Relay::builder()
            .batch(64)
            .after_publish(move || {
                if relay_p > 0.0 && rand::rng().random_bool(relay_p) {
                    relay_log("relay");
                    kill_self();
                }
            })
            .start(&admin, &client)
            .await
            .expect("relay");
        Some(tokio::spawn(relay.run(std::future::pending())))
    } else {
        None
    };

    let nth = num("CRASH_EVERY_NTH", 0.0) as u64;
    let at = if var("CRASH_AT") == "before" {
        CrashAt::BeforeCommit
    } else {
        CrashAt::AfterCommit
    };
    let p = num("CRASH_P", 0.0);
    let crash_log = log.clone();
    let handlers = Handlers {
        pool: pool.clone(),
        redis: client.get_connection_manager().await.expect("redis"),
        crash: Arc::new(move |n| {
            if nth > 0 && n == nth {
                return Some(at);
            }
            if p > 0.0 {
                let mut rng = rand::rng();
                if rng.random_bool(p) {
                    return Some(if rng.random_bool(0.5) {
                        CrashAt::BeforeCommit
                    } else {
                        CrashAt::AfterCommit
                    });
                }
            }
            None
        }),
        handled: Arc::new(AtomicU64::new(0)),
        on_crash: Arc::new(move |at| {
            crash_log(match at {
                CrashAt::BeforeCommit => "before_commit",
                CrashAt::AfterCommit => "after_commit",
            })
        }),
    };
    let worker = Worker::builder(GROUP)
        .max_in_flight(num("IN_FLIGHT", 8.0) as usize)
        .per_tenant_in_flight(2)
        .visibility_timeout(Duration::from_millis(num("VISIBILITY_MS", 1000.0) as u64))
        .max_attempts(100)
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .start(pool, &client)
        .await
        .expect("worker");
    let shutdown = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let stats = if var("MODE") == "check-then-set" {
        worker
            .run(
                move |job| {
                    let h = handlers.clone();
                    async move { h.check_then_set(job).await }
                },
                shutdown,
            )
            .await
    } else {
        worker
            .run(
                move |job| {
                    let h = handlers.clone();
                    async move { h.exactly_once(job).await }
                },
                shutdown,
            )
            .await
    }
    .expect("worker run");
    if let Some(relay) = relay {
        relay.abort();
    }
    println!("{stats:?}");
}
