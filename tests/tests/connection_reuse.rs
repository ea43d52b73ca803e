//! What a pooled connection carries from one tenant transaction to the next:
//! nothing made by hand (settings, temporary tables, held cursors), and no
//! death. With a pool of ONE connection, every transaction here runs on the
//! same server session, so whatever survives is seen.

mod common;

use std::time::{Duration, Instant};

use common::{ctx, fixture, Fixture, SEED};
use tenant_sqlx::TenantPool;
use tenant_testing::APP_ROLE;

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// The backend pid of the pool's (only) connection, through a transaction.
async fn backend_pid(pool: &TenantPool) -> i32 {
    let c = ctx(B);
    let mut tx = pool.begin(&c).await.unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pid
}

/// Tenant A leaves behind, at session level: an agent setting, a
/// statement timeout, a temporary table holding A's rows (temporary tables
/// are not under RLS) and a `WITH HOLD` cursor over A's rows.
async fn a_leaves_session_state(pool: &TenantPool) {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::raw_sql(
        "SET app.current_agent = 'agent-of-a';
         SET statement_timeout = '1234ms';
         CREATE TEMP TABLE stash AS SELECT * FROM notes;
         DECLARE held CURSOR WITH HOLD FOR SELECT body FROM notes;",
    )
    .execute(&mut tx)
    .await
    .unwrap();
    let stashed: i64 = sqlx::query_scalar("SELECT count(*) FROM stash")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(stashed, SEED[0].1, "the stash holds A's rows");
    tx.commit().await.unwrap();
}

/// What B sees of A's leftovers inside its own transaction.
#[derive(Debug, PartialEq)]
struct Seen {
    agent: Option<String>,
    statement_timeout: String,
    stash: bool,
    cursors: i64,
}

async fn b_looks(pool: &TenantPool) -> Seen {
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    let (agent, statement_timeout, stash, cursors) = sqlx::query_as(
        "SELECT current_setting('app.current_agent', true),
                current_setting('statement_timeout'),
                to_regclass('pg_temp.stash') IS NOT NULL,
                (SELECT count(*) FROM pg_cursors WHERE name = 'held')",
    )
    .fetch_one(&mut tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    Seen {
        agent,
        statement_timeout,
        stash,
        cursors,
    }
}

fn assert_clean(seen: &Seen, connect_timeout: &str, what: &str) {
    assert!(
        seen.agent.as_deref().unwrap_or("").is_empty(),
        "{what}: A's session-level agent reached B: {seen:?}"
    );
    assert_eq!(
        seen.statement_timeout, connect_timeout,
        "{what}: a SET made by hand survived, or the connect-time value was lost"
    );
    assert!(!seen.stash, "{what}: A's temporary table reached B");
    assert_eq!(seen.cursors, 0, "{what}: A's held cursor reached B");
}

#[tokio::test]
async fn session_state_made_by_hand_never_reaches_the_next_transaction() {
    let fx = fixture().await;
    // A value given at connect time is the connection's own configuration:
    // it must survive the cleaning, unlike values SET by hand.
    let url = format!(
        "{}{}options=-c%20statement_timeout%3D5s",
        fx.db.app_url(),
        if fx.db.app_url().contains('?') {
            "&"
        } else {
            "?"
        }
    );
    let pool = TenantPool::builder()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let pid = backend_pid(&pool).await;

    a_leaves_session_state(&pool).await;
    assert_eq!(backend_pid(&pool).await, pid, "still one server session");
    assert_clean(&b_looks(&pool).await, "5s", "after A committed");

    // Cleaning keeps the connection: the same session goes on.
    assert_clean(&b_looks(&pool).await, "5s", "a second look");
    assert_eq!(backend_pid(&pool).await, pid, "still one server session");

    // And after a rollback.
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::raw_sql(
        "SET app.current_agent = 'agent-of-a'; CREATE TEMP TABLE stash AS SELECT * FROM notes",
    )
    .execute(&mut tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_clean(&b_looks(&pool).await, "5s", "after A rolled back");
    assert_eq!(backend_pid(&pool).await, pid, "still one server session");
}

/// Tenant A inserts a note and drops its transaction while open.
async fn a_inserts_then_drops_its_transaction(pool: &TenantPool) {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'dropped', 'dropped')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    drop(tx);
}

#[tokio::test]
async fn without_kept_connections_nothing_is_handed_on_either() {
    // `keep_connections(false)`: every connection goes back through sqlx's
    // pool. The begin message still clears what A left.
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .keep_connections(false)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let pid = backend_pid(&pool).await;
    a_leaves_session_state(&pool).await;
    assert_clean(&b_looks(&pool).await, "0", "after A committed");
    assert_eq!(
        backend_pid(&pool).await,
        pid,
        "a cleanly ended transaction's connection is reused through sqlx"
    );

    // A transaction dropped while open is not kept for a ROLLBACK in front
    // of the next begin: its connection is closed, and its insert is gone.
    a_inserts_then_drops_its_transaction(&pool).await;
    assert_ne!(
        backend_pid(&pool).await,
        pid,
        "the connection of a transaction dropped while open was reused"
    );
    assert_eq!(count_notes(&pool, A).await.unwrap(), SEED[0].1);
    assert_clean(&b_looks(&pool).await, "0", "after A's dropped transaction");
}

#[tokio::test]
async fn a_transaction_dropped_while_open_is_rolled_back_on_its_kept_connection() {
    // The default: the connection is kept and the next begin message on it
    // starts with ROLLBACK.
    let fx = fixture().await;
    let pool = fx.pool(1).await;
    let pid = backend_pid(&pool).await;
    a_inserts_then_drops_its_transaction(&pool).await;
    assert_eq!(backend_pid(&pool).await, pid, "the connection was not kept");
    assert_eq!(count_notes(&pool, A).await.unwrap(), SEED[0].1);
}

#[tokio::test]
async fn a_commit_cancelled_at_any_point_hands_on_no_session_state() {
    let fx = fixture().await;
    let pool = fx.pool(1).await;
    let (mut cancelled, mut completed) = (0, 0);
    // Under load a reply can be in the socket before sqlx reads it, and
    // the commit then never yields: the sweep repeats until one was cut.
    for _ in 0..30 {
        for polls in 1..=8 {
            let a = ctx(A);
            let mut tx = pool.begin(&a).await.unwrap();
            sqlx::raw_sql(
                "SET app.current_agent = 'agent-of-a';
                 CREATE TEMP TABLE stash AS SELECT * FROM notes;
                 DECLARE held CURSOR WITH HOLD FOR SELECT body FROM notes;",
            )
            .execute(&mut tx)
            .await
            .unwrap();
            match common::poll_at_most(tx.commit(), polls).await {
                None => cancelled += 1,
                Some(r) => {
                    r.unwrap();
                    completed += 1;
                }
            }
            // Cancelled, the COMMIT may or may not have run, and the
            // connection goes back to the pool either way: whatever it
            // committed must still not be seen.
            assert_clean(
                &b_looks(&pool).await,
                "0",
                &format!("commit polled at most {polls} times"),
            );
        }
        if cancelled > 0 && completed > 0 {
            break;
        }
    }
    assert!(cancelled > 0, "no commit was cancelled mid-way");
    assert!(completed > 0, "no commit completed");
}

/// Terminates every application-role backend of the fixture's database and
/// waits until the server has let them go.
async fn kill_app_backends(fx: &mut Fixture) -> i64 {
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = $1",
    )
    .bind(APP_ROLE)
    .fetch_one(&mut fx.admin)
    .await
    .unwrap();
    until_no_app_backends(fx, "terminated backends did not exit").await;
    killed
}

/// Application-role backends of the fixture's database.
async fn app_backends(fx: &mut Fixture) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = $1",
    )
    .bind(APP_ROLE)
    .fetch_one(&mut fx.admin)
    .await
    .unwrap()
}

/// Waits (20 s at most, else fails with `what`) until the fixture's
/// database has no application-role backend left.
async fn until_no_app_backends(fx: &mut Fixture, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = app_backends(fx).await;
        if left == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {left} still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pool_of_three(fx: &Fixture, test_before_acquire: bool) -> TenantPool {
    let pool = TenantPool::builder()
        .max_connections(3)
        .min_connections(3)
        .test_before_acquire(test_before_acquire)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    // All three open and idle.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.num_idle() < 3 {
        assert!(Instant::now() < deadline, "the pool did not fill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool
}

async fn count_notes(pool: &TenantPool, tenant: &str) -> Result<i64, tenant_sqlx::Error> {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

#[tokio::test]
async fn begin_replaces_connections_the_server_dropped_while_idle() {
    let mut fx = fixture().await;
    let pool = pool_of_three(&fx, true).await;
    assert_eq!(count_notes(&pool, A).await.unwrap(), SEED[0].1);
    assert!(kill_app_backends(&mut fx).await >= 3);
    // Every idle connection is dead; the first `begin` meets them in turn
    // (no ping: its own BEGIN is the check) and ends on a fresh one.
    for (tenant, n) in SEED {
        assert_eq!(
            count_notes(&pool, tenant).await.unwrap(),
            n,
            "{tenant} after its connections were terminated"
        );
    }
}

#[tokio::test]
async fn without_the_check_a_dropped_connection_is_an_error_from_begin() {
    // The control for the test above: the termination really breaks idle
    // connections, and only the check hides it.
    let mut fx = fixture().await;
    let pool = pool_of_three(&fx, false).await;
    assert!(kill_app_backends(&mut fx).await >= 3);
    let err = count_notes(&pool, A).await.unwrap_err();
    assert_eq!(err.code(), "DATABASE", "{err}");
    // The broken connection was discarded, not returned: the pool recovers
    // once the other dead ones have been met too.
    let mut ok = None;
    for _ in 0..4 {
        if let Ok(n) = count_notes(&pool, A).await {
            ok = Some(n);
            break;
        }
    }
    assert_eq!(ok, Some(SEED[0].1));
}

// Handing a connection on: a transaction that ended cleanly leaves its
// connection with the pool, which gives it to the next `begin` first,
// without passing it back through sqlx (whose release ping is a round trip
// per transaction).

async fn pid_of(pool: &TenantPool, tenant: &str, commit: bool) -> i32 {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await.unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    pid
}

#[tokio::test]
async fn the_connection_a_transaction_just_ended_on_serves_the_next_begin() {
    let fx = fixture().await;
    let pool = pool_of_three(&fx, true).await;
    let first = pid_of(&pool, A, true).await;
    // A plain sqlx pool hands its idle connections out in turn (first in,
    // first out), so three transactions in a row would meet three backends.
    for (i, (tenant, commit)) in [(B, false), (A, true), (B, true), (A, false)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            pid_of(&pool, tenant, commit).await,
            first,
            "transaction {i} after the first ran on another backend"
        );
    }
    assert_eq!(pool.size(), 3);
    assert_eq!(pool.num_idle(), 3, "kept connections count as idle");
}

#[tokio::test]
async fn a_begin_waiting_for_a_connection_gets_the_one_a_commit_keeps() {
    // One connection, and a second `begin` that has to wait for it. The
    // committed connection is kept by the pool rather than released to
    // sqlx, so the waiter must be handed it: with a 3 s acquire timeout it
    // would otherwise fail with a pool timeout.
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let holder: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            let pid = pid_of(&pool, B, true).await;
            (pid, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second begin did not wait");
    tx.commit().await.unwrap();
    let (pid, waited) = waiter.await.unwrap();
    assert_eq!(
        pid, holder,
        "the waiter got a new connection, not the kept one"
    );
    assert!(
        waited < Duration::from_secs(2),
        "the waiter was not woken by the commit (waited {waited:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_loops_on_begin_does_not_starve_a_waiting_one() {
    // One connection. A "hog" task runs transactions back to back: when it
    // commits, its next `begin` comes before a waiting task is even polled
    // again. The kept connection must go to the task that was waiting,
    // which would otherwise time out (2 s) while the hog keeps going.
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog = tokio::spawn({
        let pool = pool.clone();
        let stop = stop.clone();
        async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pid_of(&pool, A, true).await;
                n += 1;
            }
            n
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waited = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let c = ctx(B);
        let tx = pool.begin(&c).await.expect("the waiting begin was starved");
        tx.rollback().await.unwrap();
        waited.push(started.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let hogged = hog.await.unwrap();
    assert!(hogged > 5, "the hog ran only {hogged} transactions");
    assert!(
        waited.iter().all(|w| *w < Duration::from_secs(1)),
        "waits: {waited:?}"
    );
}

#[tokio::test]
async fn close_releases_kept_connections_and_keeps_none_after() {
    let fx = fixture().await;
    let pool = pool_of_three(&fx, true).await;
    pid_of(&pool, A, true).await;
    // A transaction still open while the pool closes: its connection is
    // released, not kept, when it commits.
    let b = ctx(B);
    let tx = pool.begin(&b).await.unwrap();
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .expect("close waits only for the open transaction")
        .unwrap();
    assert_eq!(pool.num_idle(), 0, "a connection is still kept");
    // sqlx closes released connections in the background after `close`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.size() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} connections left open",
            pool.size()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = pool.begin(&b).await.unwrap_err();
    assert_eq!(err.code(), "DATABASE", "{err}");
}

#[test]
fn a_pool_with_kept_connections_can_be_dropped_outside_its_runtime() {
    // sqlx releases connections on a task and panics without a runtime:
    // the connection a commit kept must not turn a pool that outlives its
    // runtime into a panic when it is finally dropped.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (pool, fx) = rt.block_on(async {
        let fx = fixture().await;
        let pool = fx.pool(1).await;
        pid_of(&pool, A, true).await;
        // With one connection, the idle one is the kept one.
        assert_eq!((pool.size(), pool.num_idle()), (1, 1));
        (pool, fx)
    });
    drop(rt);
    drop(pool);
    drop(fx);
}

#[tokio::test]
async fn a_quiet_pool_still_closes_its_idle_connections() {
    // Kept connections are checked out of sqlx's pool, where its idle
    // timeout does not reach them: the pool hands them back when they have
    // been kept unused for that long, even if no transaction comes to
    // notice, and sqlx then closes them.
    let mut fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(2)
        .idle_timeout(Some(Duration::from_secs(1)))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    pid_of(&pool, A, true).await;
    assert_eq!(pool.num_idle(), pool.size() as usize);
    assert!(app_backends(&mut fx).await >= 1);
    until_no_app_backends(
        &mut fx,
        "idle connections open 20 s after a 1 s idle timeout",
    )
    .await;
    assert_eq!(pool.size(), 0);
    // And the pool still works afterwards.
    pid_of(&pool, B, true).await;
}

/// The proxy's socket directory, removed on drop.
struct ProxyDir(std::path::PathBuf);

impl Drop for ProxyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A proxy in front of the server, on a Unix socket of its own, that holds
/// every new connection for `delay` before passing it on: a connect through
/// it takes at least that long. Returns the options to connect through it.
async fn slow_connect_proxy(
    url: &str,
    delay: Duration,
) -> (sqlx::postgres::PgConnectOptions, ProxyDir) {
    use tokio::net::{TcpStream, UnixListener, UnixStream};
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let upstream: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let port = upstream.get_port();
    let dir = std::env::temp_dir().join(format!(
        "tenant-proxy-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = UnixListener::bind(dir.join(format!(".s.PGSQL.{port}"))).unwrap();
    let unix = upstream
        .get_socket()
        .map(|s| s.join(format!(".s.PGSQL.{port}")));
    let tcp = format!("{}:{port}", upstream.get_host());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (unix, tcp) = (unix.clone(), tcp.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = match unix {
                    Some(path) => {
                        let mut up = UnixStream::connect(path).await.unwrap();
                        tokio::io::copy_bidirectional(&mut client, &mut up).await
                    }
                    None => {
                        let mut up = TcpStream::connect(tcp).await.unwrap();
                        tokio::io::copy_bidirectional(&mut client, &mut up).await
                    }
                };
            });
        }
    });
    (upstream.socket(&dir), ProxyDir(dir))
}

#[tokio::test]
async fn a_connect_under_way_when_a_connection_is_handed_over_is_finished_and_kept() {
    // Two connections at most; the first is in a transaction. A second
    // `begin` finds none free and sqlx starts opening one (slow: 1 s
    // through the proxy). The first transaction commits meanwhile and its
    // connection is handed to the waiting `begin`. The connect must not be
    // abandoned half way (a server backend started for nothing): it
    // finishes in the background and its connection is kept.
    let fx = fixture().await;
    let (options, _dir) = slow_connect_proxy(fx.db.app_url(), Duration::from_secs(1)).await;
    let pool = TenantPool::builder()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .unwrap();
    // The audit's connection, back in sqlx's pool.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.num_idle() < 1 {
        assert!(
            Instant::now() < deadline,
            "the audit connection did not return"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.size(), 1);
    let a = ctx(A);
    let tx = pool.begin(&a).await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            pid_of(&pool, B, true).await;
            started.elapsed()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pool.size(), 2, "sqlx did not start a second connection");
    tx.commit().await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited < Duration::from_millis(900),
        "the waiter got the committed connection, not the new one (waited {waited:?})"
    );
    // The connect completes about 1 s after it started, and stays: both
    // connections end up kept. (Abandoned, the pool would fall back to one
    // connection as soon as the hand-off happened.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while (pool.size(), pool.num_idle()) != (2, 2) {
        assert!(
            Instant::now() < deadline,
            "the second connection was abandoned: size {}, idle {}",
            pool.size(),
            pool.num_idle()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Warnings recorded while a test runs: (target, message).
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0
                .lock()
                .unwrap()
                .push((event.metadata().target().to_owned(), message.0));
        }
    }
}

#[tokio::test]
async fn slow_acquire_warnings_only_when_a_begin_really_waited() {
    // With kept connections handed from one begin to
    // the next, sqlx's acquire left running in the background finished
    // (or gave up) long after, and logged "time to acquire exceeded slow
    // threshold" while no client waited. A current-thread runtime keeps
    // every spawned task on this thread, under this subscriber.
    use tracing_subscriber::layer::SubscriberExt;
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        // Kept connections go back to sqlx after 3 s, which is when a
        // background acquire waiting for one would get it: past sqlx's 2 s
        // threshold.
        .idle_timeout(Some(Duration::from_secs(3)))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    // What connecting logged (the audit's performance findings) is not
    // about acquiring.
    warnings.0.lock().unwrap().clear();
    let a = ctx("tenant-a");
    for _ in 0..20 {
        // Two begins at once on one connection: the second waits for the
        // first's connection and is handed it.
        let first = pool.begin(&a).await.unwrap();
        let second = pool.begin(&a);
        let (second, ()) = tokio::join!(second, async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            first.commit().await.unwrap();
        });
        second.unwrap().commit().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = warnings.0.lock().unwrap().clone();
    assert!(seen.is_empty(), "warnings with no client waiting: {seen:?}");

    // The control: a begin that really waits 2.5 s is reported, once.
    let held = pool.begin(&a).await.unwrap();
    let (waited, ()) = tokio::join!(pool.begin(&a), async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        held.commit().await.unwrap();
    });
    waited.unwrap().commit().await.unwrap();
    let seen = warnings.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].1.contains("begin waited"), "{seen:?}");
}

/// The clearing travels in the commit message, before the `COMMIT`: a
/// deferred constraint trigger must still run with the transaction's tenant
/// and role (the message runs `SET CONSTRAINTS ALL IMMEDIATE` first).
#[tokio::test]
async fn deferred_constraint_triggers_run_with_the_tenant_still_set() {
    let mut fx = fixture().await;
    common::exec(
        fx.db.owner_url(),
        &format!(
            "CREATE FUNCTION notes_tenant_at_commit() RETURNS trigger
                 LANGUAGE plpgsql SET search_path = pg_catalog AS $$
             BEGIN
                 IF current_setting('app.current_tenant', true) IS DISTINCT FROM NEW.tenant_id
                    OR current_user <> '{APP_ROLE}' THEN
                     RAISE EXCEPTION 'deferred trigger saw tenant %, role %',
                         current_setting('app.current_tenant', true), current_user;
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER notes_tenant_at_commit AFTER INSERT ON notes
                 DEFERRABLE INITIALLY DEFERRED
                 FOR EACH ROW EXECUTE FUNCTION notes_tenant_at_commit();"
        ),
    )
    .await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'deferred', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit()
        .await
        .expect("the deferred trigger saw the tenant and role at commit");
    assert_eq!(fx.count(A).await, SEED[0].1 + 1, "the row is saved");

    // The trigger really runs at commit and really reads the setting: a
    // transaction that changes its tenant after the insert fails there,
    // and its row is not saved.
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'deferred-2', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    sqlx::raw_sql("SELECT set_config('app.current_tenant', 'tenant-z', true)")
        .execute(&mut tx)
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("deferred trigger saw tenant tenant-z"),
        "{err}"
    );
    assert_eq!(
        fx.count(A).await,
        SEED[0].1 + 1,
        "the second row is not saved"
    );
    // And the next borrower is clean.
    assert_clean(&b_looks(&pool).await, "0", "after a failed commit");
}

/// A proxy like [`slow_connect_proxy`] (without the delay) that cuts the
/// connection once it has passed on a commit message, before the server's
/// answer can come back: the client cannot know whether the `COMMIT` ran.
async fn cut_at_commit_proxy(url: &str) -> (sqlx::postgres::PgConnectOptions, ProxyDir) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let upstream: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let port = upstream.get_port();
    let dir = std::env::temp_dir().join(format!(
        "tenant-cut-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = UnixListener::bind(dir.join(format!(".s.PGSQL.{port}"))).unwrap();
    let server = upstream
        .get_socket()
        .expect("the harness cluster listens on a Unix socket")
        .join(format!(".s.PGSQL.{port}"));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = server.clone();
            tokio::spawn(async move {
                let up = UnixStream::connect(server).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut up_read, mut up_write) = up.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
                    client_write
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let commit = buf[..n]
                        .windows(b"; COMMIT\0".len())
                        .any(|w| w == b"; COMMIT\0");
                    if commit {
                        // Hang up on the client before the answer is passed
                        // on; the server still gets the whole message.
                        back.abort();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        break;
                    }
                }
                // Dropping both halves closes both sockets.
            });
        }
    });
    (upstream.socket(&dir), ProxyDir(dir))
}

/// The connection is lost while the `COMMIT` is under way: the commit does
/// not say "nothing was saved" (here the server did commit) but that the
/// transaction may have been committed.
#[tokio::test]
async fn a_connection_lost_during_commit_says_it_may_have_been_committed() {
    let mut fx = fixture().await;
    let (options, _dir) = cut_at_commit_proxy(fx.db.app_url()).await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'cut-at-commit', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.code(), "COMMIT_OUTCOME_UNKNOWN", "{err}");
    assert!(err.to_string().contains("may have been committed"), "{err}");
    // The client heard of the cut at once; the server runs the COMMIT it
    // had already received.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let saved: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notes WHERE slug = 'cut-at-commit'")
                .fetch_one(&mut fx.admin)
                .await
                .unwrap();
        if saved == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not commit: this test shows nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
