//! Hardened mode on a real PostgreSQL: the policies read the guard
//! function, which returns the tenant only with the pool's proof, so SQL the
//! application runs that sets the tenant by hand reads and writes nothing.
//! Every case uses a pool of ONE connection and checks the next borrower.

mod common;

use common::{ctx, fresh_proof, Fixture, SEED};
use tenant_sqlx::guard::{Guard, GuardSecret};
use tenant_sqlx::TenantPool;

const SECRET: &[u8] = b"hardened-mode-test-secret-0123456789abcdef";
const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// The common fixture's table and rows, with hardened policies and the
/// guard installed.
async fn hardened_fixture() -> Fixture {
    common::fixture_with(Some(SECRET), true).await
}

async fn hardened_pool(fx: &Fixture, secret: &[u8]) -> TenantPool {
    TenantPool::builder()
        .max_connections(1)
        .hardened(GuardSecret::new(secret).unwrap())
        .connect(fx.db.app_url())
        .await
        .expect("a hardened database passes the hardened audit")
}

/// (visible rows, rows of other tenants) for `tenant` through `pool`.
async fn visible(pool: &TenantPool, tenant: &str) -> (i64, i64) {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await.unwrap();
    let seen =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE tenant_id <> $1) FROM notes")
            .bind(tenant)
            .fetch_one(&mut tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    seen
}

async fn assert_next_borrower_is_clean(fx: &mut Fixture, pool: &TenantPool, what: &str) {
    assert_eq!(fx.settle(pool).await, 0, "{what}");
    assert_eq!(visible(pool, B).await, (SEED[1].1, 0), "{what}");
    // And B's writes still work.
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'b')")
        .bind(B)
        .bind(format!("b-probe-{}", rand::random::<u64>()))
        .execute(&mut tx)
        .await
        .unwrap_or_else(|e| panic!("{what}: B cannot write: {e}"));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn the_normal_paths_work() {
    let mut fx = hardened_fixture().await;
    let pool = hardened_pool(&fx, SECRET).await;
    assert!(pool.audit_report().is_clean());
    assert_eq!(visible(&pool, A).await, (SEED[0].1, 0));
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'a-new', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    let updated = sqlx::query("UPDATE notes SET body = 'edited'")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated as i64, SEED[0].1 + 1, "only A's rows are updated");
    tx.commit().await.unwrap();
    let edited: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'edited'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(edited, SEED[0].1 + 1);
    assert_next_borrower_is_clean(&mut fx, &pool, "normal paths").await;
}

/// Each way SQL can set the tenant by hand, run inside tenant A's
/// transaction: afterwards nothing is visible and nothing can be written.
const FORGERIES: [&str; 5] = [
    "SELECT set_config('app.current_tenant', 'tenant-b', true)",
    "SET LOCAL app.current_tenant = 'tenant-b'",
    "SET app.current_tenant = 'tenant-b'",
    "SELECT set_config('app.current_tenant', 'tenant-b', false)",
    // A proof made up by the attacker travels with it.
    "SELECT set_config('app.current_tenant', 'tenant-b', true), \
            set_config('app.tenant_proof', repeat('ab', 32), true)",
];

#[tokio::test]
async fn a_forged_tenant_reads_nothing_and_writes_nothing() {
    let mut fx = hardened_fixture().await;
    let pool = hardened_pool(&fx, SECRET).await;
    for forgery in FORGERIES {
        let a = ctx(A);
        let mut tx = pool.begin(&a).await.unwrap();
        sqlx::raw_sql(forgery).execute(&mut tx).await.unwrap();
        let (all, of_b): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE tenant_id = 'tenant-b') FROM notes",
        )
        .fetch_one(&mut tx)
        .await
        .unwrap();
        assert_eq!((all, of_b), (0, 0), "{forgery}: rows visible");
        let updated = sqlx::query("UPDATE notes SET body = 'forged'")
            .execute(&mut tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(updated, 0, "{forgery}: rows updated");
        let deleted = sqlx::query("DELETE FROM notes")
            .execute(&mut tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(deleted, 0, "{forgery}: rows deleted");
        let insert = sqlx::query(
            "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-b', $1, 'forged')",
        )
        .bind(format!("forged-{}", rand::random::<u64>()))
        .execute(&mut tx)
        .await;
        assert!(insert.is_err(), "{forgery}: insert into B accepted");
        drop(tx);
        assert_next_borrower_is_clean(&mut fx, &pool, forgery).await;
    }
    let forged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notes WHERE body = 'forged' OR tenant_id NOT IN ('tenant-a', 'tenant-b')",
    )
    .fetch_one(&mut fx.admin)
    .await
    .unwrap();
    assert_eq!(forged, 0);
    assert_eq!(fx.count(B).await, SEED[1].1);
}

#[tokio::test]
async fn the_same_forgeries_switch_tenants_without_hardened_mode() {
    // The control: on the ordinary policy, every forgery above reads B.
    let fx = common::fixture().await;
    let pool = fx.pool(1).await;
    for forgery in &FORGERIES[..4] {
        let a = ctx(A);
        let mut tx = pool.begin(&a).await.unwrap();
        sqlx::raw_sql(forgery).execute(&mut tx).await.unwrap();
        let of_b: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = 'tenant-b'")
                .fetch_one(&mut tx)
                .await
                .unwrap();
        assert_eq!(of_b, SEED[1].1, "{forgery}");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn the_application_role_cannot_read_the_secret_or_replace_the_guard() {
    let mut fx = hardened_fixture().await;
    let pool = hardened_pool(&fx, SECRET).await;
    let attempts = [
        "SELECT secret FROM tenant_guard.secrets",
        "INSERT INTO tenant_guard.secrets (id, secret) VALUES ('mine', 'x')",
        "CREATE OR REPLACE FUNCTION tenant_guard.current_tenant() RETURNS text \
         LANGUAGE sql AS $$ SELECT current_setting('app.current_tenant', true) $$",
        "ALTER FUNCTION tenant_guard.current_tenant() SECURITY INVOKER",
        "CREATE FUNCTION tenant_guard.current_tenant(x int) RETURNS text LANGUAGE sql AS $$ SELECT 'tenant-b' $$",
        "DROP POLICY tenant_isolation ON notes",
        "ALTER TABLE notes DISABLE ROW LEVEL SECURITY",
    ];
    for attempt in attempts {
        let a = ctx(A);
        let mut tx = pool.begin(&a).await.unwrap();
        let result = sqlx::raw_sql(attempt).execute(&mut tx).await;
        let err = result.expect_err(attempt);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{attempt}: {err}");
        drop(tx);
    }
    assert_next_borrower_is_clean(&mut fx, &pool, "guard attacks").await;
}

#[tokio::test]
async fn another_session_cannot_replay_a_proof_it_never_sees() {
    // A proof is per tenant: seen once, it would open that tenant for good.
    // It travels in the begin message only, which no other session of the
    // role can read (`track_activities = off`, required by the audit).
    let mut fx = hardened_fixture().await;
    let pool = hardened_pool(&fx, SECRET).await;
    let proof_b = fresh_proof(SECRET, B);
    let b = ctx(B);
    let tx_b = pool.begin(&b).await.unwrap();
    let spy_pool = hardened_pool(&fx, SECRET).await;
    let a = ctx(A);
    let mut spy = spy_pool.begin(&a).await.unwrap();
    let texts: Vec<Option<String>> =
        sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE usename = current_user")
            .fetch_all(&mut spy)
            .await
            .unwrap();
    assert!(texts.len() >= 2);
    for text in texts.iter().flatten() {
        assert!(!text.contains(&proof_b), "B's proof is readable: {text}");
    }
    // Its own proof is all a session can read, and it opens only its own
    // tenant.
    let own: String = sqlx::query_scalar("SELECT current_setting('app.tenant_proof')")
        .fetch_one(&mut spy)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "SELECT set_config('app.current_tenant', 'tenant-b', true), \
                set_config('app.tenant_proof', '{own}', true)"
    ))
    .execute(&mut spy)
    .await
    .unwrap();
    let of_b: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut spy)
        .await
        .unwrap();
    assert_eq!(of_b, 0, "A's proof opened B");
    drop(spy);
    drop(tx_b);
    assert_next_borrower_is_clean(&mut fx, &pool, "replay").await;
}

#[tokio::test]
async fn secrets_rotate_without_downtime() {
    let mut fx = hardened_fixture().await;
    let old = hardened_pool(&fx, SECRET).await;
    let new_secret = b"the-next-secret-after-rotation-0123456789";
    let guard = Guard::new();
    // Both valid during the rotation.
    sqlx::raw_sql(&guard.add_secret_sql("next", new_secret))
        .execute(&mut fx.admin)
        .await
        .unwrap();
    let new = hardened_pool(&fx, new_secret).await;
    assert_eq!(visible(&old, A).await, (SEED[0].1, 0));
    assert_eq!(visible(&new, A).await, (SEED[0].1, 0));
    // The old secret retired: its pool reads nothing, the new one all.
    sqlx::raw_sql(&guard.remove_secret_sql("test"))
        .execute(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(visible(&old, A).await, (0, 0));
    assert_eq!(visible(&new, A).await, (SEED[0].1, 0));
    assert_next_borrower_is_clean(&mut fx, &new, "rotation").await;
}

#[tokio::test]
async fn a_pool_without_the_secret_reads_nothing_on_hardened_tables() {
    // A misconfigured deployment (hardened policies, a pool without the
    // secret) fails closed.
    let fx = hardened_fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    assert_eq!(visible(&pool, A).await, (0, 0));
    assert!(GuardSecret::new(b"too short").is_err());
}

/// Counts `B`'s notes from a transaction of `A` that sets B's tenant and
/// `proof` by hand, as SQL that copied a proof out of a log would.
async fn replay(pool: &TenantPool, proof: &str) -> i64 {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query(
        "SELECT set_config('app.current_tenant', $1, true), \
                set_config('app.tenant_proof', $2, true)",
    )
    .bind(B)
    .bind(proof)
    .execute(&mut tx)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
        .bind(B)
        .fetch_one(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    n
}

#[tokio::test]
async fn a_proof_copied_out_of_a_transaction_expires() {
    let mut fx = hardened_fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .hardened(GuardSecret::new(SECRET).unwrap())
        .proof_ttl(std::time::Duration::from_secs(1))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    // B's proof, as a log line or a crash dump would show it.
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    let seen: String = sqlx::query_scalar("SELECT current_setting('app.tenant_proof')")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Once its time has passed (by the server's clock, at the start of the
    // replaying transaction), it opens nothing, on the same backend too.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(replay(&pool, &seen).await, 0, "an expired proof opened B");
    // A proof whose expiry was edited fails its signature.
    let (until, mac) = seen.split_once('.').unwrap();
    let later: u64 = until.parse::<u64>().unwrap() + 3600;
    assert_eq!(replay(&pool, &format!("{later}.{mac}")).await, 0);
    // The secret's holder cannot make one that lives longer than the
    // guard's limit either...
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forever = common::proof_with(SECRET, B, now + 3600);
    assert_eq!(replay(&pool, &forever).await, 0);
    // ...while a fresh one of its own is accepted: the check is the
    // expiry, not the replaying session.
    assert_eq!(replay(&pool, &fresh_proof(SECRET, B)).await, SEED[1].1);
    assert_next_borrower_is_clean(&mut fx, &pool, "expired proof").await;
}

/// Every event's target and text, at every level.
#[derive(Clone, Default)]
struct AllEvents(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AllEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={v:?}", f.name()));
            }
        }
        let mut text = Text(event.metadata().target().to_owned());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
}

#[tokio::test]
async fn no_log_line_carries_a_proof() {
    use tracing_subscriber::layer::SubscriberExt;
    let fx = hardened_fixture().await;
    let events = AllEvents::default();
    let subscriber = tracing_subscriber::registry()
        .with(events.clone())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let _guard = tracing::subscriber::set_default(subscriber);
    let pool = hardened_pool(&fx, SECRET).await;
    // An ordinary pool logs its statements (sqlx's default): the capture
    // works.
    let plain = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx(A);
    plain.begin(&a).await.unwrap().commit().await.unwrap();
    let logged = events.0.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|e| e.contains("app") && e.contains("current_tenant")),
        "the plain pool's begin message was not captured: {logged:?}"
    );
    events.0.lock().unwrap().clear();
    for tenant in [A, B] {
        visible(&pool, tenant).await;
    }
    let logged = events.0.lock().unwrap().clone();
    for event in &logged {
        assert!(!event.contains("tenant_proof"), "{event}");
    }
}
