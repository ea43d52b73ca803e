//! The worker's own tables pass the crate's own audit: on a database with
//! nothing but `tenant_worker::schema_sql` applied, the audit, run as the
//! application role, reports no finding and no performance finding (the
//! index check that a service's start-up prints as a warning). Without
//! the keys that lead with the tenant column, the same audit names both
//! tables, so the clean report is not for want of looking.

use sqlx::{Connection, PgConnection};
use tenant_sqlx::audit::{self, AuditReport, Finding};
use tenant_sqlx::SettingNames;
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};
use tenant_worker::{OUTBOX_TABLE, PROCESSED_TABLE};

async fn worker_database() -> TestDatabase {
    let cluster = TestCluster::shared().await.expect("test cluster");
    let db = cluster.create_database().await.expect("database");
    owner_runs(&db, &tenant_worker::schema_sql(APP_ROLE)).await;
    db
}

async fn owner_runs(db: &TestDatabase, sql: &str) {
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut owner).await.unwrap();
    owner.close().await.unwrap();
}

async fn audit_as_app(db: &TestDatabase) -> AuditReport {
    let mut app = PgConnection::connect(db.app_url()).await.unwrap();
    let report = audit::run(&mut app, &SettingNames::default(), "tenant_id")
        .await
        .expect("the audit runs");
    app.close().await.unwrap();
    report
}

fn unindexed(report: &AuditReport) -> Vec<String> {
    report
        .performance
        .iter()
        .map(|finding| match finding {
            Finding::TenantColumnNotIndexed { table, .. } => table.clone(),
            other => panic!("an unexpected performance finding: {other}"),
        })
        .collect()
}

#[tokio::test]
async fn the_worker_tables_pass_the_audit_with_no_performance_finding() {
    let db = worker_database().await;
    let report = audit_as_app(&db).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(unindexed(&report), Vec::<String>::new());

    // The audit does look at them: without their keys, neither table has
    // an index that leads with the tenant column.
    owner_runs(
        &db,
        &format!(
            "ALTER TABLE {OUTBOX_TABLE} DROP CONSTRAINT {OUTBOX_TABLE}_pkey;
             ALTER TABLE {PROCESSED_TABLE} DROP CONSTRAINT {PROCESSED_TABLE}_pkey;"
        ),
    )
    .await;
    let report = audit_as_app(&db).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        unindexed(&report),
        [
            format!("public.{OUTBOX_TABLE}"),
            format!("public.{PROCESSED_TABLE}")
        ]
    );
}
