//! What differs between the PostgreSQL majors the crate supports (15 and
//! 17; CI runs the database tests on both, `PG_BIN_DIR` picks the server):
//! `MERGE` under row-level security (17 adds `WHEN NOT MATCHED BY SOURCE`
//! and `RETURNING`), and 17's `MAINTAIN` privilege, which the audit reports.
//! Also the audit's performance finding for a tenant table without an index
//! that leads with the tenant column, which does not refuse start-up.

mod common;

use common::{ctx, exec, fixture, Fixture, SEED};
use sqlx::Connection;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE};

const A: &str = "tenant-a";
const B: &str = "tenant-b";

async fn major() -> i32 {
    let cluster = TestCluster::shared().await.unwrap();
    cluster.server_version_num().await.unwrap() / 10_000
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn the_server_is_the_major_pg_bin_dir_names() {
    let major = major().await;
    match std::env::var("PG_BIN_DIR") {
        Ok(dir) if dir.contains("17") => assert_eq!(major, 17, "{dir}"),
        Ok(dir) if dir.contains("/15/") => assert_eq!(major, 15, "{dir}"),
        _ => assert!(major >= 15, "PostgreSQL {major} is older than supported"),
    }
}

#[tokio::test]
async fn merge_updates_only_the_tenants_rows_and_cannot_insert_for_another() {
    let mut fx = fixture().await;
    let pool = fx.pool(2).await;
    let a = ctx(A);
    // B's row is invisible to A: it is NOT MATCHED, and DO NOTHING.
    let mut tx = pool.begin(&a).await.unwrap();
    let merged = sqlx::query(
        "MERGE INTO notes n
         USING (VALUES ('tenant-b-1', 'by a'), ('tenant-a-1', 'by a')) AS s(slug, body)
         ON n.slug = s.slug
         WHEN MATCHED THEN UPDATE SET body = s.body
         WHEN NOT MATCHED THEN DO NOTHING",
    )
    .execute(&mut tx)
    .await
    .unwrap()
    .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!(merged, 1, "only A's own row matched");
    let by_a_in_b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id = $1 AND body = 'by a'")
            .bind(B)
            .fetch_one(&mut fx.admin)
            .await
            .unwrap();
    assert_eq!(by_a_in_b, 0);
    // Inserting a row for B through MERGE fails the policy's WITH CHECK.
    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query(
        "MERGE INTO notes n
         USING (VALUES ('fresh-slug')) AS s(slug) ON n.slug = s.slug
         WHEN NOT MATCHED THEN INSERT (tenant_id, slug, body) VALUES ($1, s.slug, 'x')",
    )
    .bind(B)
    .execute(&mut tx)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);
    // Moving A's row to B through MERGE's UPDATE fails it too.
    let mut tx = pool.begin(&a).await.unwrap();
    let err = sqlx::query(
        "MERGE INTO notes n USING (VALUES ('tenant-a-2')) AS s(slug) ON n.slug = s.slug
         WHEN MATCHED THEN UPDATE SET tenant_id = $1",
    )
    .bind(B)
    .execute(&mut tx)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);
    assert_eq!(fx.count(B).await, SEED[1].1);
    assert_eq!(fx.count(A).await, SEED[0].1);
}

/// 17's `WHEN NOT MATCHED BY SOURCE` acts on every target row the source
/// does not match: under RLS, every row the tenant sees, and no other. 15
/// does not have it (a syntax error there).
#[tokio::test]
async fn merge_not_matched_by_source_deletes_only_the_tenants_rows() {
    let mut fx = fixture().await;
    let pool = fx.pool(2).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let result = sqlx::query_as::<_, (String,)>(
        "MERGE INTO notes n
         USING (SELECT 'no-such-slug' AS slug) AS s ON n.slug = s.slug
         WHEN NOT MATCHED BY SOURCE THEN DELETE
         RETURNING n.tenant_id",
    )
    .fetch_all(&mut tx)
    .await;
    if major().await >= 17 {
        let deleted = result.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(deleted.len() as i64, SEED[0].1);
        assert!(deleted.iter().all(|(t,)| t == A), "{deleted:?}");
        assert_eq!(fx.count(A).await, 0);
        assert_eq!(fx.count(B).await, SEED[1].1, "B's rows survive");
    } else {
        let err = result.unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42601"), "{err}");
        drop(tx);
        assert_eq!(fx.count(A).await, SEED[0].1);
    }
}

async fn strict_pool(fx: &Fixture) -> Result<TenantPool, tenant_sqlx::Error> {
    TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
}

#[tokio::test]
async fn maintain_on_a_tenant_table_is_refused_on_17() {
    let fx = fixture().await;
    if major().await < 17 {
        // The privilege does not exist before 17.
        let mut owner = sqlx::PgConnection::connect(fx.db.owner_url())
            .await
            .unwrap();
        let err = sqlx::raw_sql(&format!("GRANT MAINTAIN ON notes TO {APP_ROLE}"))
            .execute(&mut owner)
            .await
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("maintain"), "{err}");
        strict_pool(&fx).await.expect("nothing to report on 15");
        return;
    }
    exec(
        fx.db.owner_url(),
        &format!("GRANT MAINTAIN ON notes TO {APP_ROLE}"),
    )
    .await;
    let err = strict_pool(&fx).await.unwrap_err();
    let report = err.audit_report().expect("refused by the audit");
    assert_eq!(report.codes(), ["MAINTAIN_ALLOWED"], "{report}");
    assert!(report
        .to_string()
        .contains("REVOKE MAINTAIN ON public.notes FROM tenant_app"));
    // The privilege does let the role rewrite every tenant's rows.
    for statement in [
        "VACUUM (FULL) notes",
        "CLUSTER notes USING notes_pkey",
        "REINDEX TABLE notes",
    ] {
        exec(fx.db.app_url(), statement).await;
    }
    exec(
        fx.db.owner_url(),
        &format!("REVOKE MAINTAIN ON notes FROM {APP_ROLE}"),
    )
    .await;
    strict_pool(&fx).await.expect("clean again");
    // Through the predefined role as well, granted to a role of this test
    // only (memberships are cluster-wide; the other tests use APP_ROLE).
    let role = format!("maint_{}", fx.db.name());
    exec(
        fx.db.admin_url(),
        &format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {APP_ROLE}; \
             ALTER ROLE {role} SET track_activities = off; \
             GRANT pg_maintain TO {role}"
        ),
    )
    .await;
    let err = TenantPool::builder()
        .max_connections(1)
        .connect(&fx.db.app_url().replacen(APP_ROLE, &role, 1))
        .await
        .unwrap_err();
    assert_eq!(err.audit_report().unwrap().codes(), ["MAINTAIN_ALLOWED"]);
}

#[tokio::test]
async fn a_tenant_table_without_a_tenant_index_is_a_performance_finding_only() {
    let fx = fixture().await;
    // Without the fixture's keys, which lead with `tenant_id`, nothing
    // does. The strict pool still starts.
    exec(
        fx.db.owner_url(),
        "ALTER TABLE notes DROP CONSTRAINT notes_pkey, DROP CONSTRAINT notes_tenant_id_slug_key",
    )
    .await;
    let pool = strict_pool(&fx).await.expect("performance does not refuse");
    let report = pool.audit_report();
    assert!(report.is_clean(), "{report}");
    let codes: Vec<_> = report.performance.iter().map(|f| f.code()).collect();
    assert_eq!(codes, ["TENANT_COLUMN_NOT_INDEXED"]);
    assert!(report.performance[0]
        .to_string()
        .contains("CREATE INDEX ON public.notes (tenant_id)"));
    pool.close().await;
    // An index whose second column is the tenant does not count...
    exec(
        fx.db.owner_url(),
        "CREATE INDEX notes_slug_tenant ON notes (slug, tenant_id)",
    )
    .await;
    let pool = strict_pool(&fx).await.unwrap();
    assert_eq!(pool.audit_report().performance.len(), 1);
    pool.close().await;
    // ...one that leads with it does.
    exec(
        fx.db.owner_url(),
        "CREATE INDEX notes_tenant_id ON notes (tenant_id, id)",
    )
    .await;
    let pool = strict_pool(&fx).await.unwrap();
    assert!(pool.audit_report().performance.is_empty());
}
