//! Worker processes killed with `kill -9`: every effect applied exactly
//! once, in its own tenant; and the common check-then-set pattern (a Redis
//! key checked before the work, set after it) applying one twice under the
//! same crash schedule.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::{Connection, PgConnection};
use tenant_sqlx::TenantPool;
use tenant_testing::redis::TestRedis;
use tenant_testing::{TestCluster, TestDatabase};
use tenant_tests::worker_fixture::{audit_effects, install, produce, tenant};

const PROC: &str = env!("CARGO_BIN_EXE_worker-proc");

struct Env {
    db: TestDatabase,
    redis: TestRedis,
    admin: PgConnection,
    pool: TenantPool,
}

async fn env() -> Env {
    let cluster = TestCluster::shared().await.expect("cluster");
    let db = cluster.create_database().await.expect("database");
    install(&db).await;
    let redis = TestRedis::start().await.expect("redis");
    let admin = PgConnection::connect(db.admin_url()).await.unwrap();
    let pool = TenantPool::builder()
        .max_connections(8)
        .connect(db.app_url())
        .await
        .unwrap();
    Env {
        db,
        redis,
        admin,
        pool,
    }
}

fn spawn(env: &Env, name: &str, vars: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(PROC);
    cmd.env("APP_URL", env.db.app_url())
        .env("ADMIN_URL", env.db.admin_url())
        .env("REDIS_URL", env.redis.url())
        .env("RELAY", "1")
        .env("WORKER_NAME", name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("worker-proc")
}

/// Closes stdin (graceful shutdown) and waits, killing after a while.
fn stop(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn distinct_effects(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM effects")
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_applies_every_effect_exactly_once() {
    const TENANTS: usize = 50;
    const PER_TENANT: i64 = 400;
    const WORKERS: usize = 4;
    let total = TENANTS as i64 * PER_TENANT;
    let mut e = env().await;
    let log = e.redis.dir().join("crashes.log");
    let vars = vec![
        ("MODE", "ours".to_owned()),
        ("CRASH_P", "0.001".to_owned()),
        ("RELAY_CRASH_P", "0.05".to_owned()),
        ("VISIBILITY_MS", "300".to_owned()),
        ("CRASH_LOG", log.display().to_string()),
    ];
    let mut procs: Vec<Child> = (0..WORKERS)
        .map(|i| spawn(&e, &format!("w{i}"), &vars))
        .collect();
    let mut external_kills = 0;
    let mut respawns = 0;
    let mut rng = rand::rng();
    let mut next_kill = Instant::now() + Duration::from_millis(rng.random_range(1000..2000));
    let mut produced = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        // Produce while the workers run, so the relay is busy throughout.
        if produced < PER_TENANT {
            for t in 0..TENANTS {
                produce(&e.pool, &tenant(t), produced, 20).await;
            }
            produced += 20;
        }
        for (i, p) in procs.iter_mut().enumerate() {
            if let Ok(Some(_)) = p.try_wait() {
                *p = spawn(&e, &format!("w{i}"), &vars);
                respawns += 1;
            }
        }
        if Instant::now() >= next_kill {
            let i = rng.random_range(0..WORKERS);
            let _ = procs[i].kill(); // SIGKILL
            let _ = procs[i].wait();
            external_kills += 1;
            procs[i] = spawn(&e, &format!("w{i}"), &vars);
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(1000..2000));
        }
        if produced >= PER_TENANT && distinct_effects(&mut e.admin).await == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every event was processed in time: {} of {total}",
            distinct_effects(&mut e.admin).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in procs {
        stop(p);
    }
    let crashes = std::fs::read_to_string(&log).unwrap_or_default();
    let count = |what: &str| crashes.lines().filter(|l| *l == what).count();
    println!(
        "crashes: {} before commit, {} after commit, {} in the relay; {external_kills} external kill -9, {respawns} respawns after self-kills",
        count("before_commit"),
        count("after_commit"),
        count("relay")
    );
    assert!(count("before_commit") > 0, "no crash before a commit");
    assert!(
        count("after_commit") > 0,
        "no crash between a commit and its XACK"
    );
    assert!(
        count("relay") > 0,
        "no crash between XADD and the relay's commit"
    );
    assert!(external_kills > 0);

    let (rows, distinct, wrong_outbox_tenant, wrong_payload_tenant) =
        audit_effects(&mut e.admin).await;
    assert_eq!(distinct, total, "every event applied");
    assert_eq!(rows, total, "no event applied twice");
    assert_eq!(wrong_outbox_tenant, 0, "no effect in another tenant's rows");
    assert_eq!(wrong_payload_tenant, 0);
    let per_tenant: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM effects GROUP BY tenant_id ORDER BY tenant_id",
    )
    .fetch_all(&mut e.admin)
    .await
    .unwrap();
    assert_eq!(per_tenant.len(), TENANTS);
    assert!(per_tenant.iter().all(|(_, n)| *n == PER_TENANT));
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_outbox WHERE published_at IS NULL")
            .fetch_one(&mut e.admin)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
    let client = redis::Client::open(e.redis.url()).unwrap();
    let mut conn = client.get_connection_manager().await.unwrap();
    let dead: i64 = redis::cmd("XLEN")
        .arg("tenant:events:dead")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered");
}

/// Runs one worker that crashes after committing the effect of the 5th
/// event it handles (before check-then-set's `SET` / our `XACK`), then a clean
/// one; returns the effect rows and the distinct events.
async fn crash_after_commit_once(mode: &str) -> (i64, i64) {
    let mut e = env().await;
    let events = 40;
    produce(&e.pool, &tenant(1), 0, events).await;
    let mut crashing = spawn(
        &e,
        "crashing",
        &[
            ("MODE", mode.to_owned()),
            ("CRASH_EVERY_NTH", "5".to_owned()),
            ("CRASH_AT", "after".to_owned()),
            ("VISIBILITY_MS", "300".to_owned()),
        ],
    );
    // Held open: closing stdin would be a graceful shutdown.
    let stdin = crashing.stdin.take();
    let status = crashing.wait().unwrap();
    drop(stdin);
    assert!(!status.success(), "the first worker crashed");
    let clean = spawn(
        &e,
        "clean",
        &[
            ("MODE", mode.to_owned()),
            ("VISIBILITY_MS", "300".to_owned()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while distinct_effects(&mut e.admin).await < events {
        assert!(Instant::now() < deadline, "{mode}: events left unprocessed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the redelivered copies be handled too before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop(clean);
    let (rows, distinct, _, _) = audit_effects(&mut e.admin).await;
    (rows, distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_then_set_applies_an_effect_twice_where_ours_does_not() {
    let (cts_rows, cts_distinct) = crash_after_commit_once("check-then-set").await;
    let (our_rows, our_distinct) = crash_after_commit_once("ours").await;
    println!("after one crash between commit and ack: check-then-set {cts_rows} effects for {cts_distinct} events, ours {our_rows} for {our_distinct}");
    assert_eq!((cts_distinct, our_distinct), (40, 40));
    assert!(
        cts_rows > 40,
        "check-then-set applied the crashed event again"
    );
    assert_eq!(our_rows, 40, "ours applied every event once");
}
