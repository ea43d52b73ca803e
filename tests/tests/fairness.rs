//! Fair shares of a `TenantPool` on a real PostgreSQL: a tenant's cap holds
//! (also when waiters and holders are cancelled), waiting tenants are
//! served in turn, a tenant over its share for too long gets
//! `TENANT_BUSY`, and every transaction the queue lets through runs for its
//! own tenant.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ctx, fixture, Fixture};
use tenant_core::TenantId;
use tenant_sqlx::{Error, FairShares, TenantFigures, TenantPool, TenantTx};

async fn pool_with(fx: &Fixture, max: u32, shares: FairShares) -> TenantPool {
    TenantPool::builder()
        .max_connections(max)
        .fair_shares(Some(shares))
        .connect(fx.db.app_url())
        .await
        .expect("the fixture passes the audit")
}

fn figures(pool: &TenantPool, tenant: &str) -> TenantFigures {
    pool.figures_of(&TenantId::parse(tenant).unwrap())
        .unwrap_or_default()
}

/// The tenant the transaction runs for, as the server sees it.
async fn server_tenant(tx: &mut TenantTx<'_>) -> String {
    sqlx::query_scalar("SELECT current_setting('app.current_tenant')")
        .fetch_one(tx)
        .await
        .unwrap()
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_cap_holds_under_cancellation() {
    let fx = fixture().await;
    // 4 connections, 2 per tenant, 2 kept free: no bursting.
    let pool = pool_with(
        &fx,
        4,
        FairShares::new()
            .per_tenant(2)
            .reserve(2)
            .wait(Duration::from_secs(20)),
    )
    .await;
    let a = ctx("tenant-a");
    let b = ctx("tenant-b");
    let tx1 = pool.begin(&a).await.unwrap();
    let tx2 = pool.begin(&a).await.unwrap();
    assert_eq!(figures(&pool, "tenant-a").held, 2);
    // A third transaction of tenant-a waits; cancelled, it leaves the queue.
    let third = tokio::time::timeout(Duration::from_millis(200), pool.begin(&a)).await;
    assert!(third.is_err(), "tenant-a went past its cap");
    assert_eq!(figures(&pool, "tenant-a").waiting, 0);
    assert_eq!(figures(&pool, "tenant-a").held, 2);
    // tenant-b is under its cap: served at once, twice.
    let mut b1 = pool.begin(&b).await.unwrap();
    let b2 = pool.begin(&b).await.unwrap();
    assert_eq!(server_tenant(&mut b1).await, "tenant-b");
    drop((b1, b2));
    // A holder dropped without commit returns its share: tenant-a's next
    // begin is served.
    drop(tx1);
    let mut tx3 = tokio::time::timeout(Duration::from_secs(10), pool.begin(&a))
        .await
        .expect("the dropped holder gave its share back")
        .unwrap();
    assert_eq!(server_tenant(&mut tx3).await, "tenant-a");
    // A waiter whose future is dropped while queued behind the cap does
    // not take a share later.
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move {
            let a = ctx("tenant-a");
            pool.begin(&a).await.map(drop)
        }
    });
    until("tenant-a's waiter is queued", || {
        figures(&pool, "tenant-a").waiting == 1
    })
    .await;
    queued.abort();
    let _ = queued.await;
    assert_eq!(figures(&pool, "tenant-a").waiting, 0);
    drop((tx2, tx3));
    until("every share is back", || {
        figures(&pool, "tenant-a").held == 0 && figures(&pool, "tenant-b").held == 0
    })
    .await;
}

#[tokio::test]
async fn a_tenant_over_its_share_too_long_gets_tenant_busy() {
    let fx = fixture().await;
    let pool = pool_with(
        &fx,
        2,
        FairShares::new()
            .per_tenant(1)
            .reserve(1)
            .wait(Duration::from_millis(300)),
    )
    .await;
    let a = ctx("tenant-a");
    let held = pool.begin(&a).await.unwrap();
    let err = pool.begin(&a).await.unwrap_err();
    assert!(matches!(err, Error::TenantBusy { .. }), "{err}");
    assert_eq!(err.code(), "TENANT_BUSY");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.to_string().contains("tenant-a"), "{err}");
    let f = figures(&pool, "tenant-a");
    assert_eq!((f.held, f.waiting, f.refused), (1, 0, 1));
    assert!(f.wait_time >= Duration::from_millis(300), "{f:?}");
    // Meanwhile another tenant is not refused.
    let b = ctx("tenant-b");
    pool.begin(&b).await.unwrap().commit().await.unwrap();
    held.commit().await.unwrap();
}

#[tokio::test]
async fn a_hundred_tenants_are_served_in_turn() {
    let fx = fixture().await;
    // One connection, so that transactions run one at a time and the
    // order they record is the order the queue let them through.
    let pool = pool_with(
        &fx,
        1,
        FairShares::new()
            .per_tenant(1)
            .reserve(0)
            .wait(Duration::from_secs(60)),
    )
    .await;
    let blocker = ctx("blocker");
    let held = pool.begin(&blocker).await.unwrap();
    assert_eq!(figures(&pool, "blocker").held, 1);
    // Then one tenant queues 50 begins, and 99 others one each.
    let served: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut spawn = |tenant: String| {
        let pool = pool.clone();
        let served = Arc::clone(&served);
        tasks.push(tokio::spawn(async move {
            let c = ctx(&tenant);
            let mut tx = pool.begin(&c).await.unwrap();
            // The queue let it through for its own tenant, on a session
            // that says so.
            assert_eq!(server_tenant(&mut tx).await, tenant);
            served.lock().unwrap().push(tenant);
            tx.commit().await.unwrap();
        }));
    };
    for _ in 0..50 {
        spawn("big".to_owned());
    }
    until("big's 50 begins are queued", || {
        figures(&pool, "big").waiting == 50
    })
    .await;
    for i in 0..99 {
        spawn(format!("small-{i:02}"));
    }
    until("99 more tenants are queued", || {
        (0..99).all(|i| figures(&pool, &format!("small-{i:02}")).waiting == 1)
    })
    .await;
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    let served = served.lock().unwrap().clone();
    assert_eq!(served.len(), 149);
    // Turns: big was first in line, then every small tenant in the order
    // they came, then big's other 49 (first come, first served would have
    // served big 50 times first).
    let mut expected = vec!["big".to_owned()];
    expected.extend((0..99).map(|i| format!("small-{i:02}")));
    expected.extend(std::iter::repeat_n("big".to_owned(), 49));
    assert_eq!(served, expected);
    until("every share is back", || {
        pool.tenant_figures().iter().all(|(_, f)| f.held == 0)
    })
    .await;
}

#[tokio::test]
async fn without_fair_shares_one_tenant_can_hold_the_whole_pool() {
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(2)
        .fair_shares(None)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx("tenant-a");
    let _t1 = pool.begin(&a).await.unwrap();
    let _t2 = pool.begin(&a).await.unwrap();
    // tenant-b waits behind tenant-a: nothing reserved for it.
    let b = ctx("tenant-b");
    let waited = tokio::time::timeout(Duration::from_millis(300), pool.begin(&b)).await;
    assert!(waited.is_err(), "tenant-b found a connection");
    assert!(pool.tenant_figures().is_empty());
}
