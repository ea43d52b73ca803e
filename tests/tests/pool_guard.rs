//! The pool guards itself: with a pool of ONE connection, whatever the
//! previous borrower did (commit, rollback, a failed statement, drop, panic,
//! a failed `BEGIN`, or cancellation at any await point), the next borrower
//! is not inside a transaction, sees no tenant setting, and its own
//! transaction works.

mod common;

use common::{ctx, fixture, poll_at_most, Fixture, SEED};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{Error, SettingNames, TenantPool, TenantTx};

fn ctx_with_agent(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .with_agent("agent-a")
        .validate()
        .unwrap()
}

const B: &str = "tenant-b";

/// What every scenario must leave behind.
async fn assert_next_borrower_is_clean(fx: &mut Fixture, pool: &TenantPool, what: &str) {
    assert_eq!(
        fx.settle(pool).await,
        0,
        "{what}: a connection was left inside a transaction"
    );
    let marker = fx.server_now().await;
    let b = ctx(B);
    let mut tx = pool
        .begin(&b)
        .await
        .unwrap_or_else(|e| panic!("{what}: the next begin failed: {e}"));
    let (tenant, agent, fresh, foreign, own): (Option<String>, Option<String>, bool, i64, i64) =
        sqlx::query_as(
            "SELECT current_setting('app.current_tenant', true),
                    current_setting('app.current_agent', true),
                    now() >= $1::timestamptz,
                    count(*) FILTER (WHERE tenant_id <> $2),
                    count(*)
             FROM notes",
        )
        .bind(&marker)
        .bind(B)
        .fetch_one(&mut tx)
        .await
        .unwrap_or_else(|e| panic!("{what}: the next borrower cannot query: {e}"));
    assert_eq!(tenant.as_deref(), Some(B), "{what}");
    assert!(
        agent.as_deref().unwrap_or("").is_empty(),
        "{what}: the previous agent leaked: {agent:?}"
    );
    assert!(
        fresh,
        "{what}: the next borrower ran inside an older transaction"
    );
    assert_eq!(foreign, 0, "{what}: saw another tenant's rows");
    assert_eq!(own, SEED[1].1, "{what}");
    // Its own transaction works: a write inside it succeeds.
    let inserted =
        sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'probe', 'x')")
            .bind(B)
            .execute(&mut tx)
            .await
            .unwrap_or_else(|e| panic!("{what}: the next borrower cannot write: {e}"))
            .rows_affected();
    assert_eq!(inserted, 1, "{what}");
    tx.rollback()
        .await
        .unwrap_or_else(|e| panic!("{what}: the next borrower cannot roll back: {e}"));
    // A session-level agent would show in a transaction whose context
    // carries none.
    let mut tx = pool.begin(&b).await.unwrap();
    let agent: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.current_agent', true)")
            .fetch_one(&mut tx)
            .await
            .unwrap();
    assert!(
        agent.as_deref().unwrap_or("").is_empty(),
        "{what}: session-level agent {agent:?}"
    );
    tx.commit().await.unwrap();
    assert_eq!(fx.settle(pool).await, 0, "{what}: after the probe");
}

/// A's work: touch A's rows, read them, commit.
async fn a_work(pool: &TenantPool, a: &Ctx<Validated>) -> Result<i64, Error> {
    let mut tx = pool.begin(a).await?;
    sqlx::query("UPDATE notes SET body = body || '!'")
        .execute(&mut tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body LIKE '%!'")
        .fetch_one(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Appends `!` to the body of every row the transaction's tenant sees.
async fn bang(tx: &mut TenantTx<'_>) {
    sqlx::query("UPDATE notes SET body = body || '!'")
        .execute(&mut *tx)
        .await
        .unwrap();
}

async fn bangs(fx: &mut Fixture) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notes WHERE body LIKE '%!'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_commit() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    assert_eq!(a_work(&pool, &a).await.unwrap(), SEED[0].1);
    assert_eq!(
        bangs(&mut fx).await,
        SEED[0].1,
        "only A's rows were updated"
    );
    assert_next_borrower_is_clean(&mut fx, &pool, "commit").await;
}

#[tokio::test]
async fn after_rollback() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    bang(&mut tx).await;
    tx.rollback().await.unwrap();
    assert_eq!(bangs(&mut fx).await, 0);
    assert_next_borrower_is_clean(&mut fx, &pool, "rollback").await;
}

#[tokio::test]
async fn after_a_statement_error_then_commit_or_drop() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");

    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'x', 'x')")
        .bind(B)
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "{err}"
    );
    // PostgreSQL answers COMMIT of an aborted transaction with a rollback;
    // `commit` reports it instead of a success.
    assert_eq!(tx.commit().await.unwrap_err().code(), "TRANSACTION_ABORTED");
    assert_next_borrower_is_clean(&mut fx, &pool, "statement error, commit").await;

    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("SELECT 1/0")
        .execute(&mut tx)
        .await
        .unwrap_err();
    drop(tx);
    assert_next_borrower_is_clean(&mut fx, &pool, "statement error, drop").await;
}

#[tokio::test]
async fn commit_after_a_failure_rolled_back_to_a_savepoint_still_commits() {
    // The control for the aborted case: a failure inside a savepoint that
    // was rolled back to leaves the transaction open, and its work commits.
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    bang(&mut tx).await;
    let mut sp = tx.savepoint().await.unwrap();
    sqlx::query("SELECT 1/0")
        .execute(&mut sp)
        .await
        .unwrap_err();
    sp.rollback().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(bangs(&mut fx).await, SEED[0].1);
}

#[tokio::test]
async fn a_commit_written_by_hand_is_refused_and_the_transaction_goes_on() {
    // A `COMMIT` run through the `TenantTx` would end the tenant
    // transaction behind its back; it is refused before it is sent, so
    // what runs after it still runs in the tenant transaction, and the
    // connection reaches the next borrower clean.
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    let refused = sqlx::raw_sql("COMMIT").execute(&mut tx).await.unwrap_err();
    assert_eq!(Error::from(refused).code(), "TRANSACTION_CONTROL_REFUSED");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(seen, SEED[0].1, "still tenant A's transaction");
    bang(&mut tx).await;
    tx.commit().await.unwrap();
    assert_eq!(bangs(&mut fx).await, SEED[0].1);
    assert_next_borrower_is_clean(&mut fx, &pool, "COMMIT by hand refused").await;
}

#[tokio::test]
async fn after_drop_without_commit() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    bang(&mut tx).await;
    drop(tx);
    assert_eq!(bangs(&mut fx).await, 0, "dropping rolls back");
    assert_next_borrower_is_clean(&mut fx, &pool, "drop").await;
}

#[tokio::test]
async fn after_a_panic_in_the_task() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let task_pool = pool.clone();
    let joined = tokio::spawn(async move {
        let a = ctx_with_agent("tenant-a");
        let mut tx = task_pool.begin(&a).await.unwrap();
        bang(&mut tx).await;
        panic!("the handler panics while its transaction is open");
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(bangs(&mut fx).await, 0);
    assert_next_borrower_is_clean(&mut fx, &pool, "panic").await;
}

#[tokio::test]
async fn after_cancellation_at_every_await_point() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    cancel_at_every_await_point(&mut fx, &pool).await;
}

#[tokio::test]
async fn after_cancellation_without_the_liveness_retry() {
    // The guard must not depend on `begin` retrying on another connection
    // (a TenantPool never pings before handing a connection out).
    let mut fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    cancel_at_every_await_point(&mut fx, &pool).await;
}

async fn cancel_at_every_await_point(fx: &mut Fixture, pool: &TenantPool) {
    // How many polls each round trip needs depends on how fast the server
    // answers (on a quiet machine a reply can be in the socket before sqlx
    // reads it, and that await point then never yields). The sweep is
    // repeated until one of them has been cut short at least once in each
    // of begin, the statements and commit; every sweep checks the guard.
    // On a loaded machine a reply is often there before sqlx reads it, so
    // up to 100 sweeps (a few ms each); a quiet machine needs one or two.
    let mut most_cancelled = 0;
    for _ in 0..100 {
        most_cancelled = most_cancelled.max(sweep(fx, pool).await);
        if most_cancelled >= 3 {
            break;
        }
    }
    assert!(
        most_cancelled >= 3,
        "begin, query and commit each yield at least once in some sweep (most: {most_cancelled})"
    );
}

/// Drives the work `k` polls and drops it, for every `k` until it finishes;
/// returns how many times it was cancelled.
async fn sweep(fx: &mut Fixture, pool: &TenantPool) -> usize {
    let a = ctx_with_agent("tenant-a");
    let mut cancelled = 0;
    for polls in 1.. {
        let before = bangs(fx).await;
        match poll_at_most(a_work(pool, &a), polls).await {
            Some(done) => {
                assert_eq!(done.unwrap(), SEED[0].1);
            }
            None => cancelled += 1,
        }
        let after = bangs(fx).await;
        assert!(
            after == before || after == SEED[0].1,
            "cancelled after {polls} polls: a partial update is visible ({after} rows)"
        );
        assert_next_borrower_is_clean(fx, pool, &format!("cancelled after {polls} polls")).await;
        // Start every round from A's rows untouched.
        sqlx::query("UPDATE notes SET body = rtrim(body, '!')")
            .execute(&mut fx.admin)
            .await
            .unwrap();
        if cancelled < polls {
            break;
        }
    }
    cancelled
}

#[tokio::test]
async fn after_a_begin_that_fails_after_begin() {
    // `plpgsql` reserves its prefix once loaded in a session, so setting
    // `plpgsql.current_agent` then fails *after* `BEGIN`, leaving the
    // connection "idle in transaction (aborted)" — sqlx 0.8.6 would hand
    // it to the next borrower, whose every statement would fail with 25P02.
    let mut fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .setting_names(SettingNames::default().rename_agent("plpgsql.current_agent"))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    // A plpgsql function made by the owner loads plpgsql when called (a
    // `DO` block would too, but its connection is closed after it).
    sqlx::raw_sql("CREATE FUNCTION public.noop() RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$")
        .execute(&mut fx.admin)
        .await
        .unwrap();
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("SELECT public.noop()")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let err = pool.begin(&a).await.unwrap_err();
    assert!(
        err.to_string().contains("plpgsql"),
        "the reserved prefix is refused: {err}"
    );
    // A fresh connection has not loaded plpgsql, so the default-named
    // probe below works on it, but only if the aborted one was discarded.
    let pool_default_agent = pool; // same pool, same single connection slot
    assert_eq!(fx.settle(&pool_default_agent).await, 0);
    let b = ctx(B);
    let mut tx = pool_default_agent.begin(&b).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect("not 25P02: the aborted connection was not reused");
    assert_eq!(n, SEED[1].1);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn savepoints_stay_in_the_tenant() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    {
        let mut sp = tx.savepoint().await.unwrap();
        let tenant: String = sqlx::query_scalar("SELECT current_setting('app.current_tenant')")
            .fetch_one(&mut sp)
            .await
            .unwrap();
        assert_eq!(tenant, "tenant-a");
        sqlx::query("UPDATE notes SET body = 'kept'")
            .execute(&mut sp)
            .await
            .unwrap();
        let mut inner = sp.savepoint().await.unwrap();
        sqlx::query("DELETE FROM notes")
            .execute(&mut inner)
            .await
            .unwrap();
        inner.rollback().await.unwrap();
        sp.commit().await.unwrap();
    }
    {
        let mut sp = tx.savepoint().await.unwrap();
        sqlx::query("SELECT 1/0")
            .execute(&mut sp)
            .await
            .unwrap_err();
        sp.rollback().await.unwrap();
    }
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'kept'")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(kept, SEED[0].1);
    tx.commit().await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'kept'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(
        kept, SEED[0].1,
        "only A's rows, and the inner DELETE was undone"
    );
    assert_next_borrower_is_clean(&mut fx, &pool, "savepoints").await;
}

#[tokio::test]
async fn after_a_cancelled_savepoint() {
    // A cancelled savepoint poisons the tenant transaction: later queries
    // still run inside it, for its tenant, and commit rolls everything back
    // and says TRANSACTION_LOST. (sqlx's nested transaction would instead
    // roll the whole transaction back on the spot and let later queries run
    // outside any transaction, with no tenant.)
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    // A reply already in the socket makes the round trip not yield (a
    // loaded machine): the whole sweep is repeated until it did.
    let mut cancelled = 0;
    for _ in 0..50 {
        for polls in 1.. {
            let mut tx = pool.begin(&a).await.unwrap();
            bang(&mut tx).await;
            let finished = match poll_at_most(tx.savepoint(), polls).await {
                Some(made) => {
                    made.unwrap().rollback().await.unwrap();
                    true
                }
                None => false,
            };
            if finished {
                tx.commit().await.unwrap();
                assert_eq!(bangs(&mut fx).await, SEED[0].1);
                // Undone for the next sweep.
                sqlx::query("UPDATE notes SET body = rtrim(body, '!')")
                    .execute(&mut fx.admin)
                    .await
                    .unwrap();
                break;
            }
            cancelled += 1;
            let (in_same_tx, tenant, seen): (bool, String, i64) = sqlx::query_as(
                "SELECT pg_current_xact_id_if_assigned() IS NOT NULL, \
                        current_setting('app.current_tenant'), \
                        (SELECT count(*) FROM notes WHERE body LIKE '%!')",
            )
            .fetch_one(&mut tx)
            .await
            .unwrap();
            assert!(
                in_same_tx,
                "after {polls} polls: the query left the transaction"
            );
            assert_eq!(tenant, "tenant-a");
            assert_eq!(seen, SEED[0].1, "the transaction's own update is visible");
            let err = tx.commit().await.unwrap_err();
            assert!(matches!(err, Error::TransactionLost), "{err:?}");
            assert_eq!(err.code(), "TRANSACTION_LOST");
            assert_eq!(
                bangs(&mut fx).await,
                0,
                "nothing of the transaction was committed"
            );
            assert_next_borrower_is_clean(
                &mut fx,
                &pool,
                &format!("savepoint cancelled after {polls} polls"),
            )
            .await;
        }
        if cancelled >= 1 {
            break;
        }
    }
    assert!(
        cancelled >= 1,
        "the savepoint's round trip yields at least once"
    );
}

#[tokio::test]
async fn a_savepoint_dropped_without_an_end_stops_the_commit() {
    let mut fx = fixture().await;
    let pool = fx.pool(1).await;
    let a = ctx_with_agent("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    bang(&mut tx).await;
    drop(tx.savepoint().await.unwrap());
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.code(), "TRANSACTION_LOST");
    assert_eq!(bangs(&mut fx).await, 0, "nothing was committed");
    assert_next_borrower_is_clean(&mut fx, &pool, "savepoint dropped").await;
}
