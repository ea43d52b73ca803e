//! Row-Level Security through `TenantPool`, as the application role: inside
//! A's transaction only A's rows are seen and changed, B's tenant id cannot
//! be written, and without a tenant nothing is visible or writable.

mod common;

use common::{ctx, fixture, SEED};
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated, WithAgent, WithCollection, WithConversation};

const A: &str = SEED[0].0;
const B: &str = SEED[1].0;
const A_ROWS: i64 = SEED[0].1;
const B_ROWS: i64 = SEED[1].1;

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn select_update_delete_touch_only_the_tenants_rows() {
    let mut fx = fixture().await;
    let pool = fx.pool(2).await;
    let a = ctx(A);

    let mut tx = pool.begin(&a).await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM notes")
        .fetch_all(&mut tx)
        .await
        .unwrap();
    assert_eq!(tenants, [A]);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, A_ROWS);
    // Even naming B explicitly finds nothing.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1")
        .bind(B)
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 0);

    let updated = sqlx::query("UPDATE notes SET body = 'changed by A'")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated as i64, A_ROWS);
    let deleted = sqlx::query("DELETE FROM notes WHERE slug LIKE '%-1'")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 1, "only A's `-1` row, not B's");
    tx.commit().await.unwrap();

    let b_changed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notes WHERE tenant_id = $1 AND body = 'changed by A'",
    )
    .bind(B)
    .fetch_one(&mut fx.admin)
    .await
    .unwrap();
    assert_eq!(b_changed, 0);
    assert_eq!(fx.count(B).await, B_ROWS);
    assert_eq!(fx.count(A).await, A_ROWS - 1);

    let mut tx = pool.begin(&a).await.unwrap();
    let deleted = sqlx::query("DELETE FROM notes")
        .execute(&mut tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted as i64, A_ROWS - 1);
    tx.commit().await.unwrap();
    assert_eq!(fx.count(A).await, 0);
    assert_eq!(fx.count(B).await, B_ROWS);
}

#[tokio::test]
async fn writing_the_other_tenants_id_fails_the_policy() {
    let mut fx = fixture().await;
    let pool = fx.pool(2).await;
    let a = ctx(A);

    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'planted', 'x')")
        .bind(B)
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    tx.rollback().await.unwrap();

    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query("UPDATE notes SET tenant_id = $1")
        .bind(B)
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    tx.rollback().await.unwrap();

    // Writing its own id works.
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'own', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(fx.count(A).await, A_ROWS + 1);
    assert_eq!(fx.count(B).await, B_ROWS);
}

#[tokio::test]
async fn upsert_on_the_other_tenants_key_changes_nothing_of_theirs() {
    let mut fx = fixture().await;
    // A key shared by every tenant (the audit reports it as
    // UNIQUE_KEY_WITHOUT_TENANT): a conflict on it meets another tenant's row.
    common::exec(
        fx.db.owner_url(),
        "CREATE UNIQUE INDEX notes_any_slug ON notes (slug)",
    )
    .await;
    let pool = common::leaky_pool(&fx).await;
    let a = ctx(A);
    let b_key = format!("{B}-1");
    let before: (String, String) =
        sqlx::query_as("SELECT tenant_id, body FROM notes WHERE slug = $1")
            .bind(&b_key)
            .fetch_one(&mut fx.admin)
            .await
            .unwrap();

    let mut tx = pool.begin(&a).await.unwrap();
    let outcome = sqlx::query(
        "INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'hijacked')
         ON CONFLICT (slug) DO UPDATE SET body = 'hijacked', tenant_id = excluded.tenant_id",
    )
    .bind(A)
    .bind(&b_key)
    .execute(&mut tx)
    .await;
    // PostgreSQL refuses: the conflicting row fails the UPDATE policy's
    // USING clause (it is not A's).
    let err = outcome.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);

    let after: (String, String) =
        sqlx::query_as("SELECT tenant_id, body FROM notes WHERE slug = $1")
            .bind(&b_key)
            .fetch_one(&mut fx.admin)
            .await
            .unwrap();
    assert_eq!(after, before, "B's row is untouched");
    assert_eq!(fx.count(B).await, B_ROWS);
    assert_eq!(fx.count(A).await, A_ROWS);
}

#[tokio::test]
async fn without_a_tenant_nothing_is_seen_or_written() {
    let mut fx = fixture().await;
    // The application role on a plain connection: no tenant set at all.
    let mut app = PgConnection::connect(fx.db.app_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let updated = sqlx::query("UPDATE notes SET body = 'x'")
        .execute(&mut app)
        .await
        .unwrap()
        .rows_affected();
    let deleted = sqlx::query("DELETE FROM notes")
        .execute(&mut app)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!((updated, deleted), (0, 0));
    for tenant in [A, B, ""] {
        let err =
            sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'nobody', 'x')")
                .bind(tenant)
                .execute(&mut app)
                .await
                .unwrap_err();
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{tenant:?}: {err}"
        );
    }

    // A tenant set in an earlier transaction reads '' afterwards, not NULL:
    // the policy's NULLIF still denies everything.
    sqlx::raw_sql("BEGIN; SET LOCAL app.current_tenant = 'tenant-a'; COMMIT")
        .execute(&mut app)
        .await
        .unwrap();
    let (setting, n): (Option<String>, i64) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant', true), (SELECT count(*) FROM notes)",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(setting.as_deref(), Some(""));
    assert_eq!(n, 0);

    assert_eq!(fx.count(A).await, A_ROWS);
    assert_eq!(fx.count(B).await, B_ROWS);
}

#[tokio::test]
async fn every_field_of_the_context_is_set_for_the_transaction() {
    let fx = fixture().await;
    let pool = fx.pool(1).await;
    let full: Ctx<Validated<WithAgent, WithConversation, WithCollection>> = Ctx::unvalidated()
        .with_tenant(A)
        .with_agent("agent-7")
        .with_conversation("conv:42")
        .with_collection("docs.v2")
        .validate()
        .unwrap();
    let mut tx = pool.begin(&full).await.unwrap();
    assert_eq!(tx.tenant_id().as_str(), A);
    assert!(
        format!("{tx:?}").contains(A),
        "Debug shows the tenant: {tx:?}"
    );
    let got: (String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('app.current_tenant'), current_setting('app.current_agent'),
                current_setting('app.current_conversation'), current_setting('app.current_collection')",
    )
    .fetch_one(&mut tx)
    .await
    .unwrap();
    assert_eq!(
        got,
        (
            A.into(),
            "agent-7".into(),
            "conv:42".into(),
            "docs.v2".into()
        )
    );
    tx.commit().await.unwrap();
}
