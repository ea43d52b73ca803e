//! Through a real PgBouncer (Debian's, 1.18) in transaction mode, in front of
//! the throwaway cluster: many clients share few server sessions, and
//! consecutive transactions of one client run on different sessions.
//!
//! * isolation holds: a tenant sees and writes only its rows;
//! * whatever a borrower did (commit, rollback, error, drop, cancellation,
//!   session state made by hand), the next transaction on the same server
//!   session, from another pool, carries nothing of it;
//! * a pool built without `transaction_pooler(true)` fails with
//!   `TRANSACTION_POOLER_NOT_CONFIGURED`, not with a raw protocol error;
//! * a soak: several `TenantPool`s (several app instances) with more
//!   clients than PgBouncer has server sessions, with cancellation: no
//!   foreign row, no tenant or agent carried over.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ctx, fixture, poll_at_most, Fixture, SEED};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{Error, TenantPool};
use tenant_testing::{TestCluster, TestPgBouncer, APP_ROLE};

const A: &str = "tenant-a";
const B: &str = "tenant-b";

async fn bouncer(pool_size: u32) -> TestPgBouncer {
    let cluster = TestCluster::shared().await.expect("test cluster");
    TestPgBouncer::builder()
        .pool_size(pool_size)
        .start(cluster)
        .await
        .expect("pgbouncer")
}

async fn pool_through(bouncer: &TestPgBouncer, fx: &Fixture, max: u32) -> TenantPool {
    TenantPool::builder()
        .max_connections(max)
        .transaction_pooler(true)
        .connect(&bouncer.app_url(&fx.db))
        .await
        .expect("a pool through PgBouncer passes the audit")
}

fn with_agent(tenant: &str, agent: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .with_agent(agent)
        .validate()
        .unwrap()
}

/// Server sessions of the application role on the fixture's database.
async fn app_sessions(fx: &mut Fixture) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = $1",
    )
    .bind(APP_ROLE)
    .fetch_one(&mut fx.admin)
    .await
    .unwrap()
}

/// What a transaction of `tenant` sees: its tenant and agent settings, the
/// backend it runs on, other tenants' rows, its own rows.
async fn look(pool: &TenantPool, c: &Ctx<Validated>) -> (Option<String>, String, i32, i64, i64) {
    let mut tx = pool.begin(c).await.expect("begin through PgBouncer");
    let seen: (Option<String>, String, i32, i64, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant', true),
                coalesce(current_setting('app.current_agent', true), ''),
                pg_backend_pid(),
                count(*) FILTER (WHERE tenant_id <> $1),
                count(*) FILTER (WHERE tenant_id = $1)
         FROM notes",
    )
    .bind(c.tenant_id().as_str())
    .fetch_one(&mut tx)
    .await
    .expect("query through PgBouncer");
    tx.commit().await.expect("commit through PgBouncer");
    seen
}

/// Tenant, agent, backend, foreign rows, prepared statements, `LISTEN`
/// channels, advisory locks held, own rows ending in `!`.
type Seen = (Option<String>, String, i32, i64, i64, i64, i64, i64);

async fn look_all(pool: &TenantPool, c: &Ctx<Validated>) -> Seen {
    let mut tx = pool.begin(c).await.expect("begin");
    let seen: Seen = sqlx::query_as(
        "SELECT current_setting('app.current_tenant', true),
                coalesce(current_setting('app.current_agent', true), ''),
                pg_backend_pid(),
                (SELECT count(*) FROM notes WHERE tenant_id <> $1),
                (SELECT count(*) FROM pg_prepared_statements),
                (SELECT count(*) FROM pg_listening_channels()),
                (SELECT count(*) FROM pg_locks
                  WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
                (SELECT count(*) FROM notes WHERE body LIKE '%!')",
    )
    .bind(c.tenant_id().as_str())
    .fetch_one(&mut tx)
    .await
    .expect("query");
    tx.commit().await.expect("commit");
    seen
}

#[tokio::test]
async fn each_tenant_sees_and_writes_only_its_rows_through_pgbouncer() {
    let bouncer = bouncer(2).await;
    let mut fx = fixture().await;
    let pool = pool_through(&bouncer, &fx, 4).await;
    for (tenant, n) in SEED {
        let (setting, _, _, foreign, own) = look(&pool, &ctx(tenant)).await;
        assert_eq!(setting.as_deref(), Some(tenant));
        assert_eq!((foreign, own), (0, n), "{tenant}");
    }
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let updated = sqlx::query("UPDATE notes SET body = 'touched'")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    let deleted = sqlx::query("DELETE FROM notes WHERE slug = 'tenant-b-1' OR slug = 'tenant-a-1'")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!((updated, deleted), (SEED[0].1 as u64, 1));
    assert_eq!(fx.count(B).await, SEED[1].1, "B's rows are untouched");
    let touched_b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1 AND body = 'touched'")
            .bind(B)
            .fetch_one(&mut fx.admin)
            .await
            .unwrap();
    assert_eq!(touched_b, 0);
    // Writing B's id from A's transaction fails the policy's WITH CHECK.
    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'x', 'x')")
        .bind(B)
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501"),
        "{err}"
    );
    drop(tx);
    assert_eq!(fx.count(B).await, SEED[1].1);
}

/// One server session (PgBouncer pool of 1), two app instances (two pools):
/// whatever the first left, the second's transaction on the same backend
/// is clean.
#[tokio::test]
async fn the_next_client_on_a_shared_server_session_inherits_nothing() {
    let bouncer = bouncer(1).await;
    let mut fx = fixture().await;
    let first = pool_through(&bouncer, &fx, 2).await;
    let second = pool_through(&bouncer, &fx, 2).await;
    let b = ctx(B);
    type Scenario = &'static str;
    // Cancellation last: it may leave the first pool's connections closed.
    let scenarios: [Scenario; 6] = [
        "commit",
        "rollback",
        "drop",
        "error",
        "session state by hand",
        "cancel",
    ];
    for what in scenarios {
        let a = with_agent(A, "agent-a");
        match what {
            "commit" | "rollback" | "drop" | "error" => {
                let mut tx = first.begin(&a).await.unwrap();
                sqlx::query("UPDATE notes SET body = body || '!'")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                match what {
                    "commit" => tx.commit().await.unwrap(),
                    "rollback" => tx.rollback().await.unwrap(),
                    "drop" => drop(tx),
                    _ => {
                        sqlx::query("SELECT 1/0")
                            .execute(&mut tx)
                            .await
                            .unwrap_err();
                        assert_eq!(tx.commit().await.unwrap_err().code(), "TRANSACTION_ABORTED");
                    }
                }
            }
            "cancel" => {
                for polls in 1..8 {
                    let _ = poll_at_most(
                        async {
                            let mut tx = first.begin(&a).await?;
                            sqlx::query("UPDATE notes SET body = body || '?'")
                                .execute(&mut tx)
                                .await?;
                            sqlx::query("SELECT pg_sleep(0.01)")
                                .execute(&mut tx)
                                .await?;
                            tx.rollback().await
                        },
                        polls,
                    )
                    .await;
                }
            }
            _ => {
                let mut tx = first.begin(&a).await.unwrap();
                sqlx::raw_sql(
                    "PREPARE leftover AS SELECT body FROM notes; \
                     LISTEN leftover_channel; \
                     SELECT pg_advisory_lock(4242); \
                     SELECT set_config('app.current_tenant', 'tenant-a', false)",
                )
                .execute(&mut tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
        // PgBouncer has one server session: whatever session the second
        // pool gets is the one the first pool's transactions ran on. (A
        // transaction dropped while open would hold it, and this begin would
        // wait for PgBouncer's `query_wait_timeout` and fail.)
        assert!(app_sessions(&mut fx).await <= 1, "{what}");
        let seen = look_all(&second, &b).await;
        let (tenant, agent, _, foreign, prepared, listening, locks, banged) = seen;
        assert_eq!(tenant.as_deref(), Some(B), "{what}");
        assert_eq!(agent, "", "{what}: the first client's agent leaked");
        assert_eq!(foreign, 0, "{what}");
        assert_eq!(prepared, 0, "{what}: a prepared statement was handed on");
        // The first client's commit ran `UNLISTEN *`: already the next
        // client's first transaction finds no registration.
        assert_eq!(listening, 0, "{what}: a LISTEN was handed on");
        assert_eq!(locks, 0, "{what}: an advisory lock was handed on");
        assert_eq!(banged, 0, "{what}: B's rows were touched");
    }
    // The first pool's commits did land (A's rows), its rollbacks did not.
    let a_banged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1 AND body LIKE '%!'")
            .bind(A)
            .fetch_one(&mut fx.admin)
            .await
            .unwrap();
    assert_eq!(a_banged, SEED[0].1, "exactly the committed update");
    let questioned: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body LIKE '%?%'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(questioned, 0, "a cancelled transaction committed");
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM notes WHERE tenant_id = $1")
        .bind(A)
        .fetch_all(&mut fx.admin)
        .await
        .unwrap();
    assert!(
        bodies
            .iter()
            .all(|b| b.ends_with('!') && !b.ends_with("!!")),
        "{bodies:?}"
    );
}

/// Listening channels of the server session a transaction of `pool` runs
/// on, and its backend.
async fn listening(pool: &TenantPool, c: &Ctx<Validated>, commit: bool) -> (i64, i32) {
    let mut tx = pool.begin(c).await.expect("begin");
    let seen =
        sqlx::query_as("SELECT (SELECT count(*) FROM pg_listening_channels()), pg_backend_pid()")
            .fetch_one(&mut tx)
            .await
            .expect("query");
    if commit {
        tx.commit().await.expect("commit");
    } else {
        tx.rollback().await.expect("rollback");
    }
    seen
}

/// One server session (PgBouncer pool of 1): a client's `LISTEN` ends with
/// its transaction, so the next client is never registered for it, in its
/// first transaction nor in one after a rollback (where an `UNLISTEN *` in
/// the begin message would have been rolled back too). The server only
/// sends a notification to a session that listens on its channel.
#[tokio::test]
async fn no_borrower_receives_another_ones_notifications() {
    let bouncer = bouncer(1).await;
    let mut fx = fixture().await;
    let first = pool_through(&bouncer, &fx, 1).await;
    let second = pool_through(&bouncer, &fx, 1).await;
    let (a, b) = (ctx(A), ctx(B));
    let (_, backend) = listening(&first, &a, true).await;

    let mut tx = first.begin(&a).await.unwrap();
    sqlx::raw_sql("LISTEN tenant_a_events")
        .execute(&mut tx)
        .await
        .unwrap();
    let (registered, _): (i64, i32) =
        sqlx::query_as("SELECT (SELECT count(*) FROM pg_listening_channels()), pg_backend_pid()")
            .fetch_one(&mut tx)
            .await
            .unwrap();
    // A LISTEN takes effect at commit: not yet listed.
    assert_eq!(registered, 0);
    tx.commit().await.unwrap();
    sqlx::raw_sql("NOTIFY tenant_a_events, 'for tenant a only'")
        .execute(&mut fx.admin)
        .await
        .unwrap();

    // The next client's first transaction, then one after its rollback.
    let (seen, pid) = listening(&second, &b, false).await;
    assert_eq!(pid, backend, "the same server session");
    assert_eq!(seen, 0, "the next client's first transaction listens");
    sqlx::raw_sql("NOTIFY tenant_a_events, 'for tenant a only'")
        .execute(&mut fx.admin)
        .await
        .unwrap();
    let (seen, pid) = listening(&second, &b, true).await;
    assert_eq!(pid, backend, "the same server session");
    assert_eq!(seen, 0, "a transaction after a rollback listens");
    let pending: f64 = sqlx::query_scalar("SELECT pg_notification_queue_usage()")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(pending, 0.0, "a notification waits for a listener");

    // A LISTEN in a transaction that rolls back never registers either.
    let mut tx = first.begin(&a).await.unwrap();
    sqlx::raw_sql("LISTEN tenant_a_events")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let (seen, _) = listening(&second, &b, true).await;
    assert_eq!(seen, 0, "after the first client's rollback");
}

/// Every spelling of hand-written transaction control is refused before
/// it reaches PgBouncer (which would otherwise hand the server session to
/// another client as soon as the transaction ended): the transaction goes
/// on, and `commit()` saves what ran before and after.
#[tokio::test]
async fn transaction_control_by_hand_is_refused_through_pgbouncer() {
    let bouncer = bouncer(1).await;
    let mut fx = fixture().await;
    let pool = pool_through(&bouncer, &fx, 1).await;
    for statement in common::BY_HAND {
        common::transaction_control_is_refused(&mut fx, &pool, A, statement).await;
        let (tenant, agent, _, foreign, _, listening, locks, _) = look_all(&pool, &ctx(B)).await;
        assert_eq!(tenant.as_deref(), Some(B), "{statement}");
        assert_eq!(
            (agent.as_str(), foreign, listening, locks),
            ("", 0, 0, 0),
            "{statement}"
        );
    }
}

#[tokio::test]
async fn without_the_option_pgbouncers_refusal_of_a_startup_parameter_is_a_clear_error() {
    let bouncer = bouncer(1).await;
    let fx = fixture().await;
    let err = TenantPool::builder()
        .connect(&bouncer.app_url(&fx.db))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TRANSACTION_POOLER_NOT_CONFIGURED", "{err}");
    assert!(
        err.to_string().contains("transaction_pooler(true)"),
        "{err}"
    );
}

#[tokio::test]
async fn without_the_option_named_statements_meeting_on_a_session_are_a_clear_error() {
    // The startup parameters allowed, as a PgBouncer configured for sqlx
    // would (PgBouncer drops the pool's pinned `options`; the audit sees
    // that nothing is pinned): what is left is sqlx's statement cache.
    let cluster = TestCluster::shared().await.unwrap();
    let bouncer = TestPgBouncer::builder()
        .pool_size(1)
        .ignore_startup_parameter("extra_float_digits")
        .ignore_startup_parameter("options")
        .start(cluster)
        .await
        .unwrap();
    let fx = fixture().await;
    let connect = || {
        TenantPool::builder()
            .max_connections(1)
            .connect(bouncer.app_url(&fx.db).leak())
    };
    let first = connect()
        .await
        .expect("alone on the session, sqlx's names are its own");
    // The second app instance's audit prepares `sqlx_s_1`… on the one
    // server session, where the first one's audit already did.
    let second = connect().await;
    let err = match second {
        Err(e) => e,
        Ok(second) => {
            // Or, should the audit not clash, the first query does.
            let mut failure = None;
            for pool in [&first, &second, &first] {
                let a = ctx(A);
                let outcome = async {
                    let mut tx = pool.begin(&a).await?;
                    sqlx::query("SELECT count(*) FROM notes WHERE slug <> $1")
                        .bind("x")
                        .execute(&mut tx)
                        .await?;
                    tx.commit().await
                }
                .await;
                if let Err(e) = outcome {
                    failure = Some(e);
                    break;
                }
            }
            failure.expect("named statements of two clients met on one server session")
        }
    };
    assert!(
        matches!(err, Error::TransactionPoolerNotConfigured { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "TRANSACTION_POOLER_NOT_CONFIGURED");
}

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    cancelled: AtomicU64,
    foreign_rows_seen: AtomicU64,
    wrong_setting_seen: AtomicU64,
    errors: AtomicU64,
}

const SOAK_TENANTS: usize = 16;
const SOAK_POOLS: usize = 4;
const SOAK_CLIENTS_PER_POOL: u32 = 4;
const SOAK_SERVER_SESSIONS: u32 = 3;
const SOAK_TASKS_PER_TENANT: usize = 8;
const SOAK_OPS_PER_TASK: usize = 10;

fn soak_tenant(i: usize) -> String {
    format!("soak-{i:02}")
}

async fn soak_operation(
    pool: &TenantPool,
    tenant: &str,
    agent: Option<&str>,
    rng: &mut SmallRng,
    tally: &Tally,
) -> Result<(), Error> {
    let c = match agent {
        Some(agent) => with_agent(tenant, agent),
        None => ctx(tenant),
    };
    let mut tx = pool.begin(&c).await?;
    let (setting, agent_seen, foreign): (Option<String>, String, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant', true),
                coalesce(current_setting('app.current_agent', true), ''),
                (SELECT count(*) FROM notes WHERE tenant_id <> $1)",
    )
    .bind(tenant)
    .fetch_one(&mut tx)
    .await?;
    if setting.as_deref() != Some(tenant) || agent_seen != agent.unwrap_or("") {
        tally.wrong_setting_seen.fetch_add(1, Ordering::Relaxed);
    }
    tally
        .foreign_rows_seen
        .fetch_add(foreign as u64, Ordering::Relaxed);
    match rng.random_range(0..4) {
        0 => {
            sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'soak')")
                .bind(tenant)
                .bind(format!("{tenant}/{}", rng.random::<u64>()))
                .execute(&mut tx)
                .await?;
        }
        1 => {
            sqlx::query("UPDATE notes SET body = $1 WHERE id IN (SELECT id FROM notes LIMIT 2)")
                .bind(format!("by {tenant}"))
                .execute(&mut tx)
                .await?;
        }
        _ => {}
    }
    match rng.random_range(0..10) {
        0 => drop(tx),
        1 => tx.rollback().await?,
        _ => tx.commit().await?,
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_several_pools_share_fewer_server_sessions_than_clients() {
    let started = Instant::now();
    let bouncer = bouncer(SOAK_SERVER_SESSIONS).await;
    let mut fx = fixture().await;
    let mut admin = PgConnection::connect(fx.db.admin_url()).await.unwrap();
    for i in 0..SOAK_TENANTS {
        sqlx::query(
            "INSERT INTO notes (tenant_id, slug, body)
             SELECT $1, $1 || '-' || g, 'seed' FROM generate_series(1, 4) g",
        )
        .bind(soak_tenant(i))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    let mut pools = Vec::new();
    for _ in 0..SOAK_POOLS {
        pools.push(pool_through(&bouncer, &fx, SOAK_CLIENTS_PER_POOL).await);
    }
    let tally = Arc::new(Tally::default());
    let peak_clients = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Watches the server side while the soak runs.
    let watcher = {
        let url = fx.db.admin_url().to_owned();
        let done = done.clone();
        let pools = pools.clone();
        let peak_clients = peak_clients.clone();
        tokio::spawn(async move {
            let mut admin = PgConnection::connect(&url).await.unwrap();
            let mut peak_sessions = 0i64;
            while !done.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND usename = $1",
                )
                .bind(APP_ROLE)
                .fetch_one(&mut admin)
                .await
                .unwrap();
                peak_sessions = peak_sessions.max(n);
                let clients: u32 = pools.iter().map(|p| p.size()).sum();
                peak_clients.fetch_max(u64::from(clients), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak_sessions
        })
    };
    let mut tasks = Vec::new();
    for t in 0..SOAK_TENANTS * SOAK_TASKS_PER_TENANT {
        let pools = pools.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = soak_tenant(t % SOAK_TENANTS);
            let mut rng = SmallRng::seed_from_u64(0x5eed_0000 + t as u64);
            for _ in 0..SOAK_OPS_PER_TASK {
                let pool = &pools[rng.random_range(0..pools.len())];
                let agent = rng.random_bool(0.5).then_some("agent-x");
                tally.ops.fetch_add(1, Ordering::Relaxed);
                let mut op_rng = SmallRng::seed_from_u64(rng.random());
                if rng.random_bool(0.12) {
                    let polls = rng.random_range(1..5);
                    let out = poll_at_most(
                        soak_operation(pool, &tenant, agent, &mut op_rng, &tally),
                        polls,
                    )
                    .await;
                    match out {
                        None => {
                            tally.cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(_)) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(())) => {}
                    }
                } else if soak_operation(pool, &tenant, agent, &mut op_rng, &tally)
                    .await
                    .is_err()
                {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panics");
    }
    done.store(true, Ordering::Relaxed);
    let peak_sessions = watcher.await.unwrap();

    let ops = tally.ops.load(Ordering::Relaxed);
    let cancelled = tally.cancelled.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    eprintln!(
        "pgbouncer soak: {ops} operations, {cancelled} cancelled, {errors} errors, \
         peak {peak_sessions} server sessions for {} clients, {:?}",
        peak_clients.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(tally.foreign_rows_seen.load(Ordering::Relaxed), 0);
    assert_eq!(tally.wrong_setting_seen.load(Ordering::Relaxed), 0);
    assert_eq!(errors, 0, "an operation failed through PgBouncer");
    assert!(cancelled > 0, "the soak cancelled nothing");
    // PgBouncer closes the server session of a client that left in the
    // middle of a transaction (a cancelled one) and opens another: the
    // closing one may still be listed for a moment beside its replacement.
    assert!(
        peak_sessions <= i64::from(SOAK_SERVER_SESSIONS) + 1,
        "PgBouncer opened {peak_sessions} server sessions"
    );
    assert!(
        peak_clients.load(Ordering::Relaxed) > u64::from(SOAK_SERVER_SESSIONS),
        "the pools never had more clients than server sessions"
    );
    // Every row a soak transaction wrote carries the tenant in its slug:
    // none was written under another tenant's id.
    let misplaced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notes
         WHERE slug LIKE 'soak-%/%' AND split_part(slug, '/', 1) <> tenant_id",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(misplaced, 0);
    let updated_by_other: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notes WHERE body LIKE 'by %' AND body <> 'by ' || tenant_id",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(updated_by_other, 0);
    for pool in &pools {
        pool.close().await;
    }
    let _ = app_sessions(&mut fx).await;
}
