//! Objects that read tenant tables with someone else's rights, foreign keys
//! across tenants, and partitions, on a real PostgreSQL.
//!
//! Each test starts from the common fixture (`notes`, tenant-a's 3 rows and
//! tenant-b's 5, the helper's policy), adds one object as the owner or the
//! superuser, shows the leak first through a `TenantPool` started with
//! `allow_audit_findings(true)`, then shows that a strict pool refuses to
//! start with the finding, and where there is one, that the fix passes.

mod common;

use common::{ctx, exec, fixture, leaky_pool, refused, Fixture, SEED};
use tenant_sqlx::audit::{DefinerRights, Finding};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::{APP_ROLE, OWNER_ROLE};

const A: &str = "tenant-a";
const B: &str = "tenant-b";
const ALL_ROWS: i64 = SEED[0].1 + SEED[1].1;

/// Runs `sql` in `tenant`'s transaction and returns its one `bigint`.
async fn count_as(pool: &TenantPool, tenant: &str, sql: &str) -> i64 {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await.expect("begin");
    let n = sqlx::query_scalar(sql)
        .fetch_one(&mut tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.rollback().await.expect("rollback");
    n
}

/// The superuser's name, as the audit writes it.
async fn superuser(fx: &mut Fixture) -> String {
    sqlx::query_scalar("SELECT format('%I', current_user)")
        .fetch_one(&mut fx.admin)
        .await
        .expect("current_user")
}

#[tokio::test]
async fn a_view_without_security_invoker_reads_with_its_owners_rights() {
    let mut fx = fixture().await;
    // Made by the superuser, which row-level security never filters.
    exec(
        fx.db.admin_url(),
        &format!(
            "CREATE VIEW public.all_notes AS SELECT tenant_id, slug FROM public.notes;\n\
             GRANT SELECT ON public.all_notes TO {APP_ROLE};"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM notes").await,
        SEED[0].1
    );
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM all_notes").await,
        ALL_ROWS
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::ViewNotSecurityInvoker {
            view: "public.all_notes".into(),
            owner: superuser(&mut fx).await,
            tables: vec!["public.notes".into()],
        }],
        "{report}"
    );

    // The fix: the view reads with the rights of whoever queries it.
    exec(
        fx.db.admin_url(),
        "ALTER VIEW public.all_notes SET (security_invoker = true)",
    )
    .await;
    let pool = fx.pool(1).await;
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM all_notes").await,
        SEED[0].1
    );
}

#[tokio::test]
async fn views_are_followed_through_other_views_to_the_tenant_table() {
    let mut fx = fixture().await;
    // Two views in a schema the application cannot use, each under a view
    // it can. PostgreSQL checks a security_invoker view as the current
    // user whoever refers to it, so only the chain of definer views leaks.
    exec(
        fx.db.admin_url(),
        &format!(
            "CREATE SCHEMA internal;\n\
             CREATE VIEW internal.slugs AS SELECT tenant_id, slug FROM public.notes;\n\
             CREATE VIEW public.recent AS SELECT * FROM internal.slugs;\n\
             CREATE VIEW internal.own_slugs WITH (security_invoker = true) AS \
               SELECT tenant_id, slug FROM public.notes;\n\
             CREATE VIEW public.own AS SELECT * FROM internal.own_slugs;\n\
             GRANT SELECT ON public.recent, public.own TO {APP_ROLE};"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM recent").await,
        ALL_ROWS
    );
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM own").await,
        SEED[0].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::ViewNotSecurityInvoker {
            view: "public.recent".into(),
            owner: superuser(&mut fx).await,
            tables: vec!["public.notes".into()],
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_materialized_view_shows_the_rows_of_whoever_refreshed_it() {
    let fx = fixture().await;
    // Made by the owner, whom FORCE filters: it holds the rows of the tenant
    // that was set when it was refreshed, here tenant-b.
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE MATERIALIZED VIEW public.note_slugs AS \
               SELECT tenant_id, slug FROM public.notes WITH NO DATA;\n\
             GRANT SELECT ON public.note_slugs TO {APP_ROLE};\n\
             BEGIN;\n\
             SET LOCAL app.current_tenant = '{B}';\n\
             REFRESH MATERIALIZED VIEW public.note_slugs;\n\
             COMMIT;"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(
            &pool,
            A,
            "SELECT count(*) FROM note_slugs WHERE tenant_id = 'tenant-b'"
        )
        .await,
        SEED[1].1
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::MaterializedViewReadable {
            view: "public.note_slugs".into(),
            tables: vec!["public.notes".into()],
            role: APP_ROLE.into(),
        }],
        "{report}"
    );

    // Not readable by the application: not a finding.
    exec(
        fx.db.owner_url(),
        &format!("REVOKE ALL ON public.note_slugs FROM {APP_ROLE}"),
    )
    .await;
    assert!(fx.pool(1).await.audit_report().is_clean());
}

#[tokio::test]
async fn a_security_definer_function_of_a_superuser_reads_every_tenant() {
    let mut fx = fixture().await;
    // Every role may execute a new function: PUBLIC has EXECUTE by default.
    exec(
        fx.db.admin_url(),
        "CREATE FUNCTION public.note_count() RETURNS bigint LANGUAGE sql STABLE \
           SECURITY DEFINER AS 'SELECT count(*) FROM public.notes'",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, A, "SELECT public.note_count()").await,
        ALL_ROWS
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::SecurityDefinerFunction {
            function: "public.note_count()".into(),
            owner: superuser(&mut fx).await,
            rights: DefinerRights::Superuser,
            role: APP_ROLE.into(),
        }],
        "{report}"
    );

    exec(
        fx.db.admin_url(),
        "REVOKE EXECUTE ON ROUTINE public.note_count() FROM PUBLIC",
    )
    .await;
    assert!(fx.pool(1).await.audit_report().is_clean());
}

#[tokio::test]
async fn a_security_definer_function_of_the_table_owner_can_turn_rls_off() {
    let mut fx = fixture().await;
    // FORCE filters the owner, but the owner may turn row-level security
    // off, and a definer function does whatever it does with that right.
    exec(
        fx.db.owner_url(),
        "CREATE FUNCTION public.run_report(statement text) RETURNS void LANGUAGE plpgsql \
           SECURITY DEFINER AS $$ BEGIN EXECUTE statement; END $$",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::query("SELECT public.run_report('ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY')")
        .execute(&mut tx)
        .await
        .expect("the owner's rights");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .expect("count");
    tx.rollback().await.expect("rollback");
    assert_eq!(seen, ALL_ROWS);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::SecurityDefinerFunction {
            function: "public.run_report(statement text)".into(),
            owner: OWNER_ROLE.into(),
            rights: DefinerRights::OwnsTenantTable {
                table: "public.notes".into()
            },
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report.to_string().contains(
        "REVOKE EXECUTE ON ROUTINE public.run_report(statement text) FROM PUBLIC, tenant_app"
    ));
    // Still as it was: the transaction above was rolled back.
    let enabled: bool = sqlx::query_scalar(
        "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass",
    )
    .fetch_one(&mut fx.admin)
    .await
    .expect("relrowsecurity");
    assert!(enabled);
}

/// `folders` and `files`, both tenant tables made by the helper, tenant-a's
/// folder 1 and tenant-b's folder 2; `files` refers to a folder by `key`.
async fn folders_and_files(fx: &mut Fixture, key: &str) {
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE folders (id bigint NOT NULL, tenant_id text NOT NULL, \
                                   PRIMARY KEY (tenant_id, id){folder_key});\n{folders}\
             CREATE TABLE files (id bigserial, tenant_id text NOT NULL, \
                                 folder_id bigint NOT NULL, {key} ON DELETE CASCADE, \
                                 PRIMARY KEY (tenant_id, id));\n{files}\
             GRANT USAGE ON SEQUENCE files_id_seq TO {APP_ROLE};",
            // A key that ignores the tenant needs a unique `id` to point at.
            folder_key = if key.contains("tenant_id") {
                ""
            } else {
                ", UNIQUE (id)"
            },
            folders = RlsPolicy::new("folders", "tenant_id")
                .grant_to(APP_ROLE)
                .sql(),
            files = RlsPolicy::new("files", "tenant_id")
                .grant_to(APP_ROLE)
                .sql(),
        ),
    )
    .await;
    sqlx::raw_sql("INSERT INTO folders VALUES (1, 'tenant-a'), (2, 'tenant-b')")
        .execute(&mut fx.admin)
        .await
        .expect("folders");
}

/// Tenant A files something in folder `folder`: the result of the insert.
async fn file_in(pool: &TenantPool, folder: i64) -> Result<(), sqlx::Error> {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::query("INSERT INTO files (tenant_id, folder_id) VALUES ($1, $2)")
        .bind(A)
        .bind(folder)
        .execute(&mut tx)
        .await?;
    tx.commit().await.expect("commit");
    Ok(())
}

#[tokio::test]
async fn a_foreign_key_without_the_tenant_column_crosses_tenants() {
    let mut fx = fixture().await;
    folders_and_files(&mut fx, "FOREIGN KEY (folder_id) REFERENCES folders (id)").await;

    let pool = leaky_pool(&fx).await;
    // Folder 2 is hidden from tenant A...
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM folders WHERE id = 2").await,
        0
    );
    // ...but the key check tells A it exists (and that 3 does not).
    file_in(&pool, 2)
        .await
        .expect("a row of A refers to B's folder");
    let missing = file_in(&pool, 3)
        .await
        .expect_err("folder 3 does not exist");
    assert_eq!(
        missing
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("23503")
    );
    // When tenant B deletes its folder, the cascade deletes A's row.
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.expect("begin");
    sqlx::query("DELETE FROM folders WHERE id = 2")
        .execute(&mut tx)
        .await
        .expect("delete");
    tx.commit().await.expect("commit");
    let files_of_a: i64 = sqlx::query_scalar("SELECT count(*) FROM files WHERE tenant_id = $1")
        .bind(A)
        .fetch_one(&mut fx.admin)
        .await
        .expect("count");
    assert_eq!(files_of_a, 0, "B's delete removed A's row");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [
            Finding::ForeignKeyWithoutTenant {
                constraint: "files_folder_id_fkey".into(),
                table: "public.files".into(),
                references: "public.folders".into(),
                column: "tenant_id".into(),
            },
            Finding::UniqueKeyWithoutTenant {
                index: "public.folders_id_key".into(),
                table: "public.folders".into(),
                definition: "CREATE UNIQUE INDEX folders_id_key ON public.folders USING btree (id)"
                    .into(),
                column: "tenant_id".into(),
            }
        ],
        "{report}"
    );
}

#[tokio::test]
async fn a_foreign_key_that_includes_the_tenant_column_passes() {
    let mut fx = fixture().await;
    folders_and_files(
        &mut fx,
        "FOREIGN KEY (tenant_id, folder_id) REFERENCES folders (tenant_id, id)",
    )
    .await;

    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    file_in(&pool, 1).await.expect("A's own folder");
    file_in(&pool, 2).await.expect_err("B's folder is not A's");
}

#[tokio::test]
async fn a_partition_reached_directly_is_audited_as_a_table() {
    let mut fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE events (tenant_id text NOT NULL, at date NOT NULL, what text) \
               PARTITION BY RANGE (at);\n\
             CREATE TABLE events_2026 PARTITION OF events \
               FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n{}",
            RlsPolicy::new("events", "tenant_id")
                .grant_to(APP_ROLE)
                .sql()
        ),
    )
    .await;
    sqlx::raw_sql(
        "INSERT INTO events VALUES ('tenant-a', '2026-03-01', 'a'), ('tenant-b', '2026-03-02', 'b')",
    )
    .execute(&mut fx.admin)
    .await
    .expect("events");

    // Through the parent, the parent's policy applies; the partition
    // itself is out of the role's reach.
    let pool = fx.pool(1).await;
    assert_eq!(count_as(&pool, A, "SELECT count(*) FROM events").await, 1);

    // Granted directly, the partition is a table without a policy.
    exec(
        fx.db.owner_url(),
        &format!("GRANT SELECT ON events_2026 TO {APP_ROLE}"),
    )
    .await;
    let leaky = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&leaky, A, "SELECT count(*) FROM events_2026").await,
        2
    );

    let report = refused(&fx).await;
    let table = || "public.events_2026".to_owned();
    assert_eq!(
        report.findings,
        [
            Finding::RlsNotEnabled { table: table() },
            Finding::RlsNotForced { table: table() },
            Finding::NoTenantPolicy {
                table: table(),
                setting: "app.current_tenant".into()
            },
        ],
        "{report}"
    );
}

#[tokio::test]
async fn a_correct_schema_with_views_functions_and_keys_has_no_findings() {
    let mut fx = fixture().await;
    folders_and_files(
        &mut fx,
        "FOREIGN KEY (tenant_id, folder_id) REFERENCES folders (tenant_id, id)",
    )
    .await;
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE VIEW note_slugs WITH (security_invoker = true) AS SELECT tenant_id, slug FROM notes;\n\
             GRANT SELECT ON note_slugs TO {APP_ROLE};\n\
             CREATE MATERIALIZED VIEW note_stats AS SELECT tenant_id, count(*) FROM notes GROUP BY 1;\n\
             CREATE FUNCTION slug_of(n notes) RETURNS text LANGUAGE sql STABLE AS 'SELECT n.slug';\n\
             CREATE FUNCTION purge_everything() RETURNS void LANGUAGE sql SECURITY DEFINER \
               AS 'DELETE FROM notes';\n\
             REVOKE EXECUTE ON FUNCTION purge_everything() FROM PUBLIC;"
        ),
    )
    .await;
    // The memory module's tables beside them.
    exec(
        fx.db.owner_url(),
        &tenant_sqlx::memory::migration(&tenant_sqlx::SettingNames::default(), APP_ROLE),
    )
    .await;

    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM note_slugs").await,
        SEED[0].1
    );
}
