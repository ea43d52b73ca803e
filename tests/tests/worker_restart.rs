//! Redis and PostgreSQL restarted under a running relay and worker:
//! processing resumes, nothing committed is lost and nothing is applied
//! twice. Its own PostgreSQL cluster (it is killed mid-run), so its own
//! test binary.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_testing::redis::TestRedis;
use tenant_testing::TestCluster;
use tenant_tests::worker_fixture::{self, audit_effects, install, tenant, Effect, Handlers, GROUP};
use tenant_worker::{self as worker, Relay, Worker, WorkerError};
use tokio::sync::oneshot;

/// Kills the cluster's postmaster with `SIGQUIT` (an immediate shutdown:
/// every backend dies mid-transaction, as in a crash) and starts it again
/// from the same data directory and options, under a watchdog that stops it
/// when the returned child's stdin closes (this process ending included).
fn restart_postgres(cluster: &TestCluster) -> Child {
    let dir = cluster.dir().expect("a throwaway cluster");
    let data = dir.join("data");
    let pid = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_owned();
    let opts = std::fs::read_to_string(data.join("postmaster.opts")).unwrap();
    let program = opts
        .split_whitespace()
        .next()
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let args: Vec<String> = opts
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .filter(|a| *a != program)
        .collect();
    assert!(Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .unwrap()
        .success());
    let gone = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("\"$@\" >>server-restarted.log 2>&1 & pg=$!; cat >/dev/null; kill -QUIT \"$pg\"; wait \"$pg\"")
        .arg("restarted-pg");
    if root {
        cmd.args([
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
    }
    cmd.arg(&program)
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().unwrap()
}

/// Publishes one event of `t` in its own transaction; `false` if the
/// database failed (the transaction did not commit, or its outcome is
/// unknown: the check below counts outbox rows, not attempts).
async fn publish_one(pool: &TenantPool, t: &str, seq: i64) -> bool {
    let ctx: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant(t)
        .with_agent("producer")
        .validate()
        .unwrap();
    let attempt = async {
        let mut tx = pool.begin(&ctx).await?;
        let effect = Effect {
            tenant: t.to_owned(),
            seq,
        };
        worker::publish(&mut tx, "effect", &effect).await?;
        tx.commit().await?;
        Ok::<(), WorkerError>(())
    };
    attempt.await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_postgres_restart_mid_run_lose_nothing_and_double_nothing() {
    const TENANTS: usize = 10;
    const EVENTS: i64 = 600;
    let cluster = TestCluster::start().await.expect("own cluster");
    let db = cluster.create_database().await.unwrap();
    install(&db).await;
    // The harness switches durability off (its data is thrown away); a
    // crash then loses acknowledged commits, which no queue design can
    // survive. Production keeps `synchronous_commit = on`: so does this test.
    let mut su = PgConnection::connect(db.admin_url()).await.unwrap();
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{}\" SET synchronous_commit = on",
        db.name()
    ))
    .execute(&mut su)
    .await
    .unwrap();
    su.close().await.unwrap();
    let redis = TestRedis::start().await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let pool = TenantPool::builder()
        .max_connections(8)
        .connect(db.app_url())
        .await
        .unwrap();
    let admin_pool = AdminPool::connect(db.admin_url()).await.unwrap();
    let relay = Relay::builder().start(&admin_pool, &client).await.unwrap();
    let (relay_stop, relay_stopped) = oneshot::channel::<()>();
    let relay = tokio::spawn(relay.run(async move {
        let _ = relay_stopped.await;
    }));
    let handlers = Handlers {
        pool: pool.clone(),
        redis: client.get_connection_manager().await.unwrap(),
        crash: Arc::new(|_| None),
        handled: Arc::new(AtomicU64::new(0)),
        on_crash: Arc::new(|_| {}),
    };
    let worker = Worker::builder(GROUP)
        .max_in_flight(8)
        .visibility_timeout(Duration::from_millis(500))
        .max_attempts(1000)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .start(pool.clone(), &client)
        .await
        .unwrap();
    let running = worker_fixture::spawn(worker, move |job| {
        let h = handlers.clone();
        async move { h.exactly_once(job).await }
    });

    let mut restarted_pg = None;
    let mut failed_publishes = 0;
    for seq in 0..EVENTS {
        if seq == EVENTS / 3 {
            redis.restart().await.unwrap();
        }
        if seq == 2 * EVENTS / 3 {
            restarted_pg = Some(restart_postgres(&cluster));
        }
        let t = tenant(seq as usize % TENANTS);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !publish_one(&pool, &t, seq).await {
            failed_publishes += 1;
            assert!(Instant::now() < deadline, "PostgreSQL did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Every committed outbox row gets its effect.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut admin = loop {
        if let Ok(c) = PgConnection::connect(db.admin_url()).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outbox: i64 = loop {
        let (outbox, done): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenant_outbox),
                    (SELECT count(DISTINCT event_id) FROM effects)",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if outbox == done {
            break outbox;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {outbox} events applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Give redeliveries of acknowledgements lost in the restarts their turn.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = running.stop().await.unwrap();
    let _ = relay_stop.send(());
    relay.await.unwrap();
    println!("restarts: {failed_publishes} failed publishes retried; worker {stats:?}");

    assert!(
        outbox >= EVENTS,
        "every acknowledged publish is in the outbox"
    );
    let (rows, distinct, wrong_outbox_tenant, wrong_payload_tenant) =
        audit_effects(&mut admin).await;
    assert_eq!(
        (rows, distinct),
        (outbox, outbox),
        "each event applied once"
    );
    assert_eq!((wrong_outbox_tenant, wrong_payload_tenant), (0, 0));
    let mut conn = client.get_connection_manager().await.unwrap();
    let dead: i64 = redis::cmd("XLEN")
        .arg("tenant:events:dead")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    admin.close().await.unwrap();
    pool.close().await;
    if let Some(mut pg) = restarted_pg {
        drop(pg.stdin.take());
        let _ = pg.wait();
    }
}
