//! Round trips, counted on the wire: `begin` is one round trip (`BEGIN` and
//! the `SET LOCAL`s in one message, no ping before it), and so are `commit`
//! and `rollback` (the clearing travels with them); a transaction dropped
//! while open sends nothing, and its `ROLLBACK` travels with the next
//! begin. The same in hardened mode and behind a transaction pooler, where
//! a connection dropped inside a transaction is closed instead (it would
//! hold one of the pooler's server sessions), so the next begin connects.
//!
//! A [`CountingProxy`] sits between the pool and the server (or PgBouncer)
//! and counts round trips: a reply from the server to bytes from the
//! client. However the message and its reply are split into writes and
//! reads, one exchange counts once. Every measurement starts on a warm,
//! idle connection of a pool of one and counts every connection through
//! the proxy, so a ping or a new connection would show. The controls show
//! the counter telling one round trip from two: sqlx's `BEGIN` and
//! `SET LOCAL` sent as two statements, sqlx's own pool (a ping before its
//! `BEGIN`), and a pool that returns connections to sqlx (a ping after the
//! `COMMIT`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ctx, fixture, fixture_with, SEED};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::{TenantPool, TenantPoolBuilder};
use tenant_testing::{TestCluster, TestPgBouncer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

const A: &str = "tenant-a";
const SECRET: &[u8] = b"round-trips-test-secret-0123456789abcdef";
/// How long the traffic must have been quiet before it is read: a
/// background ping or a late message would land in it.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a measurement waits for the traffic to go quiet, at most.
const PATIENCE: Duration = Duration::from_secs(10);

/// Round trips and new connections through a [`CountingProxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traffic {
    round_trips: u64,
    connections: u64,
}

const NOTHING: Traffic = Traffic {
    round_trips: 0,
    connections: 0,
};
const ONE: Traffic = Traffic {
    round_trips: 1,
    connections: 0,
};
const TWO: Traffic = Traffic {
    round_trips: 2,
    connections: 0,
};

#[derive(Default)]
struct Counts {
    round_trips: AtomicU64,
    connections: AtomicU64,
}

/// Where the proxy forwards to: the socket or address the URL names.
#[derive(Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String, u16),
}

/// A proxy on a Unix socket of its own that forwards every connection to
/// the server a URL names and counts round trips.
struct CountingProxy {
    dir: PathBuf,
    options: PgConnectOptions,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(url: &str) -> CountingProxy {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let target: PgConnectOptions = url.parse().expect("url");
        let port = target.get_port();
        let socket = format!(".s.PGSQL.{port}");
        let upstream = match target.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(&socket)),
            None if target.get_host().starts_with('/') => {
                Upstream::Unix(Path::new(target.get_host()).join(&socket))
            }
            None => Upstream::Tcp(target.get_host().to_owned(), port),
        };
        let dir = std::env::temp_dir().join(format!(
            "tenant-rt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("proxy directory");
        let listener = UnixListener::bind(dir.join(&socket)).expect("proxy socket");
        let counts = Arc::new(Counts::default());
        let accept = tokio::spawn(accept(listener, upstream, counts.clone()));
        CountingProxy {
            options: target.socket(&dir),
            dir,
            counts,
            accept,
        }
    }

    /// The URL's options, through the proxy.
    fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    fn now(&self) -> Traffic {
        Traffic {
            round_trips: self.counts.round_trips.load(Ordering::SeqCst),
            connections: self.counts.connections.load(Ordering::SeqCst),
        }
    }

    /// The counts so far, once nothing has gone through for [`SETTLE`].
    async fn mark(&self) -> Traffic {
        let deadline = Instant::now() + PATIENCE;
        let mut last = self.now();
        loop {
            tokio::time::sleep(SETTLE).await;
            let now = self.now();
            if now == last {
                return now;
            }
            assert!(Instant::now() < deadline, "the traffic does not settle");
            last = now;
        }
    }

    /// What went through since `mark`, once the traffic has settled.
    async fn since(&self, mark: Traffic) -> Traffic {
        let now = self.mark().await;
        Traffic {
            round_trips: now.round_trips - mark.round_trips,
            connections: now.connections - mark.connections,
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn accept(listener: UnixListener, upstream: Upstream, counts: Arc<Counts>) {
    while let Ok((client, _)) = listener.accept().await {
        counts.connections.fetch_add(1, Ordering::SeqCst);
        let counts = counts.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            match upstream {
                Upstream::Unix(path) => {
                    if let Ok(server) = UnixStream::connect(path).await {
                        relay(client, server, counts).await;
                    }
                }
                Upstream::Tcp(host, port) => {
                    if let Ok(server) = TcpStream::connect((host.as_str(), port)).await {
                        let _ = server.set_nodelay(true);
                        relay(client, server, counts).await;
                    }
                }
            }
        });
    }
}

/// Forwards both ways until either side closes, counting a round trip for
/// each reply: bytes from the server after bytes from the client.
/// `client_spoke` is set before the client's bytes are passed on, so the
/// server's answer to them always finds it set; bytes the client sends
/// with no answer (a `Terminate`) count for nothing.
async fn relay<S>(client: UnixStream, server: S, counts: Arc<Counts>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let client_spoke = Arc::new(AtomicBool::new(false));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = tokio::io::split(server);
    let from_client = {
        let client_spoke = client_spoke.clone();
        pump(client_read, server_write, move || {
            client_spoke.store(true, Ordering::SeqCst);
        })
    };
    let from_server = pump(server_read, client_write, move || {
        if client_spoke.swap(false, Ordering::SeqCst) {
            counts.round_trips.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::join!(from_client, from_server);
}

/// Copies `from` to `to`, calling `seen` on every read before passing the
/// bytes on.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, seen: impl Fn()) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen();
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Waits (bounded) until `done`.
async fn until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "still waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A pool of one connection through `proxy`, warmed by one transaction.
/// Without the continuous audit, whose own connection would go through
/// the proxy too and is not part of a transaction's cost.
async fn warm_pool(proxy: &CountingProxy, builder: TenantPoolBuilder) -> TenantPool {
    let pool = builder
        .max_connections(1)
        .audit_interval(None)
        .connect_with(proxy.options())
        .await
        .expect("a pool through the proxy");
    assert_eq!(common::notes(&pool, &ctx(A)).await.unwrap(), SEED[0].1);
    pool
}

/// A context with every field, so that the begin message sets four.
fn full_ctx() -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(A)
        .with_agent("agent-7")
        .with_conversation("conversation-9")
        .with_collection("collection-3")
        .validate()
        .expect("valid context")
}

/// Counts `begin`, `commit` and `rollback` on `pool` (warm, one
/// connection), and checks that the begin set every field.
async fn begin_commit_rollback(proxy: &CountingProxy, pool: &TenantPool, what: &str) {
    let c = full_ctx();
    let mark = proxy.mark().await;
    let mut tx = pool.begin(&c).await.expect("begin");
    assert_eq!(proxy.since(mark).await, ONE, "{what}: begin");
    let fields: (String, String, String, String, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant'), current_setting('app.current_agent'),
                current_setting('app.current_conversation'),
                current_setting('app.current_collection'), count(*) FROM notes",
    )
    .fetch_one(&mut tx)
    .await
    .expect("fields");
    assert_eq!(
        fields,
        (
            A.into(),
            "agent-7".into(),
            "conversation-9".into(),
            "collection-3".into(),
            SEED[0].1
        ),
        "{what}: the one message set every field"
    );
    let mark = proxy.mark().await;
    tx.commit().await.expect("commit");
    assert_eq!(proxy.since(mark).await, ONE, "{what}: commit");

    let mark = proxy.mark().await;
    let tx = pool.begin(&c).await.expect("begin");
    assert_eq!(proxy.since(mark).await, ONE, "{what}: begin after commit");
    let mark = proxy.mark().await;
    tx.rollback().await.expect("rollback");
    assert_eq!(proxy.since(mark).await, ONE, "{what}: rollback");
}

/// Drops a transaction of `pool` with an insert in it (no round trip),
/// then counts the next begin, and checks that it opened a new transaction
/// without the insert.
async fn begin_after_a_drop(proxy: &CountingProxy, pool: &TenantPool, what: &str) -> Traffic {
    let c = ctx(A);
    let mut tx = pool.begin(&c).await.expect("begin");
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'dropped', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .expect("insert");
    let mark = proxy.mark().await;
    drop(tx);
    assert_eq!(proxy.since(mark).await, NOTHING, "{what}: drop");
    let mark = proxy.mark().await;
    let mut tx = pool.begin(&c).await.expect("begin after a drop");
    let traffic = proxy.since(mark).await;
    let (tenant, dropped): (String, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant'),
                (SELECT count(*) FROM notes WHERE slug = 'dropped')",
    )
    .fetch_one(&mut tx)
    .await
    .expect("after the drop");
    assert_eq!(
        (tenant.as_str(), dropped),
        (A, 0),
        "{what}: a new transaction"
    );
    tx.commit().await.expect("commit");
    traffic
}

#[tokio::test]
async fn begin_commit_and_rollback_are_one_round_trip_each() {
    let fx = fixture().await;
    let proxy = CountingProxy::start(fx.db.app_url()).await;
    let pool = warm_pool(&proxy, TenantPool::builder()).await;
    begin_commit_rollback(&proxy, &pool, "default pool").await;
    let after_drop = begin_after_a_drop(&proxy, &pool, "default pool").await;
    assert_eq!(after_drop, ONE, "the rollback travels with the begin");
}

#[tokio::test]
async fn in_hardened_mode_too() {
    let fx = fixture_with(Some(SECRET), true).await;
    let proxy = CountingProxy::start(fx.db.app_url()).await;
    let secret = GuardSecret::new(SECRET).expect("secret");
    let pool = warm_pool(&proxy, TenantPool::builder().hardened(secret)).await;
    begin_commit_rollback(&proxy, &pool, "hardened").await;
    let after_drop = begin_after_a_drop(&proxy, &pool, "hardened").await;
    assert_eq!(after_drop, ONE, "the rollback travels with the begin");
}

#[tokio::test]
async fn behind_a_transaction_pooler_too() {
    let fx = fixture().await;
    let cluster = TestCluster::shared().await.expect("test cluster");
    let bouncer = TestPgBouncer::builder()
        .pool_size(1)
        .start(cluster)
        .await
        .expect("pgbouncer");
    // Counted between the pool and PgBouncer: what the application waits
    // for.
    let proxy = CountingProxy::start(&bouncer.app_url(&fx.db)).await;
    let pool = warm_pool(&proxy, TenantPool::builder().transaction_pooler(true)).await;
    begin_commit_rollback(&proxy, &pool, "behind PgBouncer").await;
    let after_drop = begin_after_a_drop(&proxy, &pool, "behind PgBouncer").await;
    eprintln!("behind PgBouncer, the begin after a drop: {after_drop:?}");
    assert_eq!(
        after_drop.connections, 1,
        "the connection left inside a transaction was closed, not kept"
    );
}

#[tokio::test]
async fn the_counter_tells_one_round_trip_from_two() {
    let fx = fixture().await;
    let proxy = CountingProxy::start(fx.db.app_url()).await;

    // The begin message's statements sent one by one, then together.
    let mut conn = PgConnection::connect_with(&proxy.options())
        .await
        .expect("connect");
    let mark = proxy.mark().await;
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::raw_sql("SET LOCAL app.current_tenant = 'tenant-a'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(proxy.since(mark).await, TWO, "two statements");
    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
    let mark = proxy.mark().await;
    sqlx::raw_sql("BEGIN; SET LOCAL app.current_tenant = 'tenant-a'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(proxy.since(mark).await, ONE, "one message");
    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    // sqlx's own pool pings an idle connection before its `BEGIN`.
    let sqlx_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(proxy.options())
        .await
        .expect("sqlx pool");
    sqlx_pool.begin().await.unwrap().commit().await.unwrap();
    // Its release ping done: the connection is idle again.
    until(|| sqlx_pool.num_idle() == 1).await;
    let mark = proxy.mark().await;
    let tx = sqlx_pool.begin().await.unwrap();
    assert_eq!(proxy.since(mark).await, TWO, "sqlx: ping, BEGIN");
    tx.rollback().await.unwrap();
    sqlx_pool.close().await;

    // A pool that returns its connections to sqlx: the begin is still one
    // round trip, but sqlx pings the connection it takes back after the
    // commit.
    let pool = warm_pool(&proxy, TenantPool::builder().keep_connections(false)).await;
    until(|| pool.num_idle() == 1).await;
    let c = ctx(A);
    let mark = proxy.mark().await;
    let tx = pool.begin(&c).await.unwrap();
    assert_eq!(proxy.since(mark).await, ONE, "unkept: begin");
    let mark = proxy.mark().await;
    tx.commit().await.unwrap();
    until(|| pool.num_idle() == 1).await;
    assert_eq!(
        proxy.since(mark).await,
        TWO,
        "unkept: COMMIT, then sqlx's ping"
    );
}
