//! The policy written by `tenant_sqlx::rls::RlsPolicy`, run by a real
//! PostgreSQL as the application role: it isolates tenants for reads and
//! writes, denies everything without a tenant, and keeps hostile names inside
//! their quotes.
//!
//! Transactions here are plain sqlx ones with the tenant set by hand, to test
//! the policy on its own, apart from `TenantPool`.

use sqlx::{Connection, PgConnection};
use tenant_sqlx::audit;
use tenant_sqlx::rls::{RlsPolicy, TableName};
use tenant_sqlx::SettingNames;
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};

async fn fresh_database() -> TestDatabase {
    TestCluster::shared()
        .await
        .expect("test cluster")
        .create_database()
        .await
        .expect("test database")
}

async fn exec(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

/// Runs `sql` inside a transaction of `tenant`; the transaction is committed
/// when `sql` succeeds.
async fn as_tenant(conn: &mut PgConnection, tenant: &str, sql: &str) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let affected = sqlx::query(sql).execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(affected)
}

async fn count_as(conn: &mut PgConnection, tenant: &str, table: &str) -> i64 {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("set tenant");
    let n = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    tx.rollback().await.expect("rollback");
    n
}

fn is_policy_violation(err: &sqlx::Error) -> bool {
    // 42501: "new row violates row-level security policy".
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501")
}

#[tokio::test]
async fn policy_isolates_tenants() {
    let db = fresh_database().await;
    exec(
        db.owner_url(),
        &format!(
            "CREATE TABLE public.notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text);\n{}",
            RlsPolicy::new("public.notes", "tenant_id")
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;
    let mut app = PgConnection::connect(db.app_url()).await.expect("connect");

    for (id, tenant) in [(1, "acme"), (2, "acme"), (3, "globex")] {
        let inserted = as_tenant(
            &mut app,
            tenant,
            &format!("INSERT INTO public.notes VALUES ({id}, '{tenant}', 'x')"),
        )
        .await
        .expect("insert own row");
        assert_eq!(inserted, 1);
    }

    assert_eq!(count_as(&mut app, "acme", "public.notes").await, 2);
    assert_eq!(count_as(&mut app, "globex", "public.notes").await, 1);
    assert_eq!(count_as(&mut app, "initech", "public.notes").await, 0);

    // Reads and writes of another tenant's rows touch nothing.
    let updated = as_tenant(&mut app, "globex", "UPDATE public.notes SET body = 'y'")
        .await
        .expect("update");
    assert_eq!(updated, 1);
    let deleted = as_tenant(&mut app, "globex", "DELETE FROM public.notes WHERE id = 1")
        .await
        .expect("delete");
    assert_eq!(deleted, 0);

    // Writing a row for another tenant fails the WITH CHECK.
    let err = as_tenant(
        &mut app,
        "acme",
        "INSERT INTO public.notes VALUES (4, 'globex', 'forged')",
    )
    .await
    .expect_err("insert for another tenant");
    assert!(is_policy_violation(&err), "{err}");
    let err = as_tenant(
        &mut app,
        "acme",
        "UPDATE public.notes SET tenant_id = 'globex' WHERE id = 1",
    )
    .await
    .expect_err("move a row to another tenant");
    assert!(is_policy_violation(&err), "{err}");

    // Without a tenant: after the transactions above the setting has been
    // reverted to '' in this session (the NULLIF case), and on a fresh
    // connection it was never defined (the NULL case). Both see and write
    // nothing.
    for conn in [
        &mut app,
        &mut PgConnection::connect(db.app_url()).await.expect("connect"),
    ] {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM public.notes")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        assert_eq!(seen, 0);
        let err = sqlx::query("INSERT INTO public.notes VALUES (5, 'acme', 'no tenant')")
            .execute(&mut *conn)
            .await
            .expect_err("insert without tenant");
        assert!(is_policy_violation(&err), "{err}");
    }

    let mut owner = PgConnection::connect(db.owner_url())
        .await
        .expect("connect");
    // FORCE: the owner is filtered too, and has no tenant here.
    let seen_by_owner: i64 = sqlx::query_scalar("SELECT count(*) FROM public.notes")
        .fetch_one(&mut owner)
        .await
        .expect("owner count");
    assert_eq!(seen_by_owner, 0);
    assert_eq!(count_as(&mut owner, "acme", "public.notes").await, 2);
}

#[tokio::test]
async fn hostile_names_name_exactly_one_table_column_policy_and_role() {
    let db = fresh_database().await;
    let schema = r#"we"ird; DROP SCHEMA public; --"#;
    let table = r#"Notes "of" tenants"#;
    let column = r#"tenant" OR true OR "x"#;
    let policy_name = r#"p" ON public.x USING (true); --"#;
    let role = format!(r#"{}_r"ole"#, db.name());
    exec(
        db.admin_url(),
        &format!(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS",
            tenant_sqlx::rls::quote_ident(&role)
        ),
    )
    .await;
    let policy = RlsPolicy::new(TableName::qualified(schema, table), column)
        .policy_name(policy_name)
        .grant_to(APP_ROLE)
        .grant_to(role.clone());
    exec(
        db.owner_url(),
        &format!(
            "CREATE SCHEMA {s};\nGRANT USAGE ON SCHEMA {s} TO {APP_ROLE};\n\
             CREATE TABLE {t} ({c} text NOT NULL, body text);\n{sql}",
            s = tenant_sqlx::rls::quote_ident(schema),
            t = policy.table(),
            c = tenant_sqlx::rls::quote_ident(column),
            sql = policy.sql()
        ),
    )
    .await;

    let mut admin = PgConnection::connect(db.admin_url())
        .await
        .expect("connect");
    // `public` survived, and the policy landed where it was meant to.
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname IN ('public', $1)")
            .bind(schema)
            .fetch_one(&mut admin)
            .await
            .expect("schemas");
    assert_eq!(schemas, 2);
    let (policy_table, cmd, qual): (String, String, String) = sqlx::query_as(
        "SELECT tablename::text, cmd, qual FROM pg_policies \
         WHERE schemaname = $1 AND policyname = $2",
    )
    .bind(schema)
    .bind(policy_name)
    .fetch_one(&mut admin)
    .await
    .expect("the policy exists under its hostile name");
    assert_eq!(policy_table, table);
    assert_eq!(cmd, "ALL");
    assert!(qual.contains(r#""tenant"" OR true OR ""x""#), "{qual}");
    let granted: bool = sqlx::query_scalar(
        "SELECT has_table_privilege($1, (SELECT oid FROM pg_class WHERE relname = $2), 'INSERT')",
    )
    .bind(&role)
    .bind(table)
    .fetch_one(&mut admin)
    .await
    .expect("privilege");
    assert!(granted);

    // And it isolates.
    let mut app = PgConnection::connect(db.app_url()).await.expect("connect");
    let target = policy.table().to_string();
    let col = tenant_sqlx::rls::quote_ident(column);
    as_tenant(
        &mut app,
        "acme",
        &format!("INSERT INTO {target} ({col}) VALUES ('acme')"),
    )
    .await
    .expect("insert own row");
    assert_eq!(count_as(&mut app, "acme", &target).await, 1);
    assert_eq!(count_as(&mut app, "globex", &target).await, 0);

    // The audit reads the same table back and finds it in order.
    let report = audit::run(&mut app, &SettingNames::default(), column)
        .await
        .expect("audit");
    assert!(report.is_clean(), "{report}");
}

/// The generated condition is what a hand-written `WHERE tenant_id = $1`
/// would be to the planner: an index condition on an index that leads with
/// the tenant column (the policy's setting is read once per scan, not per
/// row), for reads, counts and updates alike.
#[tokio::test]
async fn the_policy_is_an_index_condition_on_a_tenant_leading_index() {
    let db = fresh_database().await;
    exec(
        db.owner_url(),
        &format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, tenant_id text NOT NULL, n int NOT NULL);
             CREATE INDEX items_tenant ON items (tenant_id, id);
             INSERT INTO items SELECT i, 't-' || (i % 500), 0 FROM generate_series(1, 50000) i;
             ANALYZE items;
             {}",
            RlsPolicy::new("items", "tenant_id")
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;
    let mut conn = PgConnection::connect(db.app_url()).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.current_tenant', 't-7', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for statement in [
        "SELECT count(*) FROM items",
        "SELECT n FROM items ORDER BY id DESC LIMIT 5",
        "UPDATE items SET n = n + 1 WHERE n >= 0",
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {statement}"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("items_tenant")
                && plan.contains("Index Cond: (tenant_id = NULLIF(current_setting("),
            "{statement}: the tenant condition is not an index condition:\n{plan}"
        );
        assert!(!plan.contains("InitPlan"), "{statement}:\n{plan}");
    }
    // And it still means: 100 rows of t-7, none of anyone else's.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 100);
    tx.rollback().await.unwrap();
}

/// `per_statement(true)` writes the sub-select form: the setting is an
/// init-plan, read once per statement even in a sequential scan. It
/// isolates the same way and passes the audit.
#[tokio::test]
async fn the_per_statement_form_reads_the_setting_once_and_isolates_the_same() {
    let db = fresh_database().await;
    exec(
        db.owner_url(),
        &format!(
            "CREATE TABLE events (id bigint NOT NULL, tenant_id text NOT NULL, body text NOT NULL);
             INSERT INTO events SELECT i, 't-' || (i % 2), 'x' FROM generate_series(1, 10000) i;
             ANALYZE events;
             {}",
            RlsPolicy::new("events", "tenant_id")
                .per_statement(true)
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;
    let mut conn = PgConnection::connect(db.app_url()).await.unwrap();
    let report = audit::run(&mut conn, &SettingNames::default(), "tenant_id")
        .await
        .unwrap();
    assert!(report.is_clean(), "{report}");
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT count(*) FROM events WHERE body <> ''")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("InitPlan"), "{plan}");
    assert_eq!(count_as(&mut conn, "t-1", "events").await, 5000);
    assert_eq!(count_as(&mut conn, "t-9", "events").await, 0);
    assert_eq!(
        as_tenant(
            &mut conn,
            "t-1",
            "INSERT INTO events VALUES (20000, 't-0', 'foreign')"
        )
        .await
        .unwrap_err()
        .as_database_error()
        .and_then(|e| e.code())
        .as_deref(),
        Some("42501"),
        "WITH CHECK refuses another tenant's row"
    );
}
