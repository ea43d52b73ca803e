//! The audit reads policies for what they mean, on a real PostgreSQL.
//!
//! Each test starts from the common fixture (`notes`, tenant-a's 3 rows and
//! tenant-b's 5, the helper's policy), breaks one policy as the owner, shows
//! the leak first (through a `TenantPool` started with
//! `allow_audit_findings(true)`, or through a plain application-role session
//! that has not set a tenant), then shows that a strict pool refuses to
//! start with the finding. The last tests are the other side: policies that
//! are bound to the tenant in other spellings, and a restrictive tenant
//! policy that bounds permissive ones, pass with no finding.

mod common;

use common::{ctx, exec, fixture, leaky_pool, refused, Fixture, SEED};
use sqlx::{Connection, PgConnection};
use tenant_sqlx::audit::{Finding, PolicyClause};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::APP_ROLE;

const A: &str = "tenant-a";
const B: &str = "tenant-b";
const ALL_ROWS: i64 = SEED[0].1 + SEED[1].1;
/// What PostgreSQL 15 prints for the helper's condition.
const BOUND: &str = "(tenant_id = ( SELECT NULLIF(current_setting('app.current_tenant'::text, true), ''::text) AS \"nullif\"))";

/// The tenants whose rows `tenant` sees in `notes` through `pool`.
async fn tenants_seen(pool: &TenantPool, tenant: &str) -> Vec<String> {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await.expect("begin");
    let seen = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM notes ORDER BY 1")
        .fetch_all(&mut tx)
        .await
        .expect("select");
    tx.rollback().await.expect("rollback");
    seen
}

/// Rows of `notes` an application-role session sees without a tenant.
async fn rows_without_tenant(fx: &Fixture) -> i64 {
    let mut app = PgConnection::connect(fx.db.app_url()).await.expect("app");
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut app)
        .await
        .expect("count")
}

fn not_bound(policy: &str, clause: PolicyClause, expression: &str) -> Finding {
    Finding::PolicyNotTenantBound {
        table: "public.notes".into(),
        policy: policy.into(),
        clause,
        expression: expression.into(),
    }
}

/// Replaces the helper's policy with one whose `USING` is `using`.
async fn replace_tenant_policy(fx: &Fixture, using: &str) {
    exec(
        fx.db.owner_url(),
        &format!(
            "DROP POLICY tenant_isolation ON notes;\n\
             CREATE POLICY tenant_isolation ON notes USING ({using}) \
             WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')));"
        ),
    )
    .await;
}

#[tokio::test]
async fn or_true_lets_every_tenant_read_every_row() {
    let fx = fixture().await;
    replace_tenant_policy(
        &fx,
        "tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')) OR true",
    )
    .await;

    // The leak, through the pool: tenant A reads tenant B's rows.
    let pool = leaky_pool(&fx).await;
    assert_eq!(tenants_seen(&pool, A).await, [A, B]);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [not_bound(
            "tenant_isolation",
            PolicyClause::Using,
            &format!("({BOUND} OR true)")
        )],
        "{report}"
    );
    assert_eq!(report.codes(), ["POLICY_NOT_TENANT_BOUND"]);
}

#[tokio::test]
async fn or_setting_is_null_opens_every_row_to_a_session_without_a_tenant() {
    let fx = fixture().await;
    replace_tenant_policy(
        &fx,
        "tenant_id = current_setting('app.current_tenant', true) \
         OR current_setting('app.current_tenant', true) IS NULL",
    )
    .await;

    assert_eq!(rows_without_tenant(&fx).await, ALL_ROWS);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [not_bound(
            "tenant_isolation",
            PolicyClause::Using,
            "((tenant_id = current_setting('app.current_tenant'::text, true)) \
             OR (current_setting('app.current_tenant'::text, true) IS NULL))"
        )],
        "{report}"
    );
}

#[tokio::test]
async fn coalesce_with_the_column_opens_every_row_to_a_session_without_a_tenant() {
    let fx = fixture().await;
    replace_tenant_policy(
        &fx,
        "tenant_id = COALESCE(current_setting('app.current_tenant', true), tenant_id)",
    )
    .await;

    assert_eq!(rows_without_tenant(&fx).await, ALL_ROWS);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [not_bound(
            "tenant_isolation",
            PolicyClause::Using,
            "(tenant_id = COALESCE(current_setting('app.current_tenant'::text, true), tenant_id))"
        )],
        "{report}"
    );
}

/// Adds `is_public` and makes tenant-b's first note public.
async fn public_column(fx: &mut Fixture) {
    exec(
        fx.db.owner_url(),
        "ALTER TABLE notes ADD COLUMN is_public boolean NOT NULL DEFAULT false",
    )
    .await;
    sqlx::raw_sql("UPDATE notes SET is_public = true WHERE slug = 'tenant-b-1'")
        .execute(&mut fx.admin)
        .await
        .expect("publish");
}

#[tokio::test]
async fn a_second_permissive_policy_widens_the_tenant_policy_unless_declared() {
    let mut fx = fixture().await;
    public_column(&mut fx).await;
    exec(
        fx.db.owner_url(),
        "CREATE POLICY public_read ON notes FOR SELECT USING (is_public)",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(tenants_seen(&pool, A).await, [A, B]);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [not_bound("public_read", PolicyClause::Using, "is_public")],
        "{report}"
    );

    // Declared on purpose, by name: the pool starts with no finding.
    let declared = TenantPool::builder()
        .allow_policy("public_read")
        .connect(fx.db.app_url())
        .await
        .expect("a declared policy is not a finding");
    assert!(declared.audit_report().is_clean());
}

#[tokio::test]
async fn a_widening_policy_for_all_lets_one_tenant_rewrite_another_tenants_row() {
    let mut fx = fixture().await;
    public_column(&mut fx).await;
    exec(
        fx.db.owner_url(),
        "CREATE POLICY public_rows ON notes FOR ALL USING (is_public) WITH CHECK (is_public)",
    )
    .await;

    // Tenant A rewrites tenant B's public note.
    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let updated = sqlx::query("UPDATE notes SET body = 'defaced by A' WHERE slug = 'tenant-b-1'")
        .execute(&mut tx)
        .await
        .expect("update")
        .rows_affected();
    tx.commit().await.expect("commit");
    assert_eq!(updated, 1);
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE slug = 'tenant-b-1'")
        .fetch_one(&mut fx.admin)
        .await
        .expect("body");
    assert_eq!(body, "defaced by A");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [
            not_bound("public_rows", PolicyClause::Using, "is_public"),
            not_bound("public_rows", PolicyClause::WithCheck, "is_public"),
        ],
        "{report}"
    );
}

#[tokio::test]
async fn policies_bound_to_the_tenant_in_other_spellings_pass() {
    let mut fx = fixture().await;
    public_column(&mut fx).await;
    // Extra conditions AND-ed to the tenant term, the setting without the
    // sub-select or without missing_ok, casts, a varchar and a uuid column.
    exec(
        fx.db.owner_url(),
        &format!(
            "DROP POLICY tenant_isolation ON notes;\n\
             CREATE POLICY tenant_isolation ON notes \
               USING (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')) \
                      AND (is_public OR body <> '') AND slug IS NOT NULL) \
               WITH CHECK (body <> '' AND current_setting('app.current_tenant') = tenant_id);\n\
             CREATE POLICY own_public_read ON notes FOR SELECT \
               USING (is_public AND tenant_id = NULLIF(current_setting('app.current_tenant', true), ''));\n\
             CREATE TABLE labels (tenant_id varchar(64) NOT NULL, label text);\n{labels}\
             CREATE TABLE accounts (tenant_id uuid NOT NULL, name text);\n\
             ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE accounts FORCE ROW LEVEL SECURITY;\n\
             CREATE POLICY by_tenant ON accounts \
               USING (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid)) \
               WITH CHECK (tenant_id = current_setting('app.current_tenant')::uuid);\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON accounts TO {APP_ROLE};",
            labels = RlsPolicy::new("labels", "tenant_id")
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;

    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    assert_eq!(tenants_seen(&pool, A).await, [A]);
    assert_eq!(rows_without_tenant(&fx).await, 0);
}

#[tokio::test]
async fn a_restrictive_tenant_policy_bounds_every_permissive_one() {
    let fx = fixture().await;
    // The tenant rule as a restrictive policy; the permissive ones say which
    // of the tenant's rows, here all of them.
    exec(
        fx.db.owner_url(),
        "DROP POLICY tenant_isolation ON notes;\n\
         CREATE POLICY tenant_isolation ON notes AS RESTRICTIVE FOR ALL \
           USING (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), ''))) \
           WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')));\n\
         CREATE POLICY everything ON notes USING (true) WITH CHECK (true);",
    )
    .await;

    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    assert_eq!(tenants_seen(&pool, A).await, [A]);
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let insert = sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'x', 'x')")
        .bind(B)
        .execute(&mut tx)
        .await;
    assert!(insert.is_err(), "A wrote a row of B");
    drop(tx);

    // A restrictive policy for SELECT only bounds neither writes nor a
    // `DELETE` without a `WHERE` (which reads no column, so the SELECT
    // policies do not apply to it): A then deletes B's rows.
    exec(
        fx.db.owner_url(),
        "DROP POLICY tenant_isolation ON notes;\n\
         CREATE POLICY reads ON notes AS RESTRICTIVE FOR SELECT \
           USING (tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')));",
    )
    .await;
    let leaky = leaky_pool(&fx).await;
    assert_eq!(tenants_seen(&leaky, A).await, [A]);
    let mut tx = leaky.begin(&a).await.expect("begin");
    let deleted = sqlx::query("DELETE FROM notes")
        .execute(&mut tx)
        .await
        .expect("delete")
        .rows_affected();
    tx.rollback().await.expect("rollback");
    assert_eq!(deleted as i64, ALL_ROWS);
    let report = refused(&fx).await;
    let always_true = |clause| Finding::PermissiveAlwaysTrue {
        table: "public.notes".into(),
        policy: "everything".into(),
        clause,
    };
    assert_eq!(
        report.findings,
        [
            always_true(PolicyClause::Using),
            always_true(PolicyClause::WithCheck)
        ],
        "{report}"
    );
}

#[tokio::test]
async fn hardened_policies_need_a_hardened_pool() {
    let fx = fixture().await;
    fx.db
        .install_guard(b"a-secret-of-at-least-thirty-two-bytes")
        .await
        .expect("guard");
    exec(
        fx.db.owner_url(),
        &format!(
            "DROP POLICY tenant_isolation ON notes;\n\
             CREATE POLICY tenant_isolation ON notes USING ({c}) WITH CHECK ({c});",
            c = RlsPolicy::new("notes", "tenant_id")
                .hardened(true)
                .condition()
        ),
    )
    .await;

    // Not a leak: a pool without the secret sees nothing at all.
    let pool = leaky_pool(&fx).await;
    assert!(tenants_seen(&pool, A).await.is_empty());

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::PolicyNeedsHardenedPool {
            table: "public.notes".into(),
            policy: "tenant_isolation".into(),
        }],
        "{report}"
    );
}
