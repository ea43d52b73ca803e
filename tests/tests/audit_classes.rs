//! Leaks the audit must see: roles and membership, tables it would not
//! take for tenant tables, comparisons that do not mean equality, side
//! channels between tenants; and schemas that are safe and must pass.
//!
//! Each leak test first shows the leak (or, where no probe reads rows, the
//! dangerous state) through a real `TenantPool` started with
//! `allow_audit_findings(true)`, then shows a strict pool refusing to start
//! with the finding and its fix.

mod common;

use common::{ctx, exec, fixture, fixture_in, leaky_pool, refused, Fixture, SEED};
use tenant_sqlx::audit::{DefinerRights, Finding, PolicyClause};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::{TestCluster, APP_ROLE, OWNER_ROLE};

const A: &str = "tenant-a";
const B: &str = "tenant-b";
const ALL_ROWS: i64 = SEED[0].1 + SEED[1].1;

/// Runs `sql` in `tenant`'s transaction (rolled back) and returns its one
/// `bigint`.
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

/// Runs `sql` in `tenant`'s transaction and commits: its result.
async fn run_as(pool: &TenantPool, tenant: &str, sql: &str) -> Result<u64, sqlx::Error> {
    let c = ctx(tenant);
    let mut tx = pool.begin(&c).await.expect("begin");
    let done = sqlx::query(sql).execute(&mut tx).await?;
    tx.commit().await.expect("commit");
    Ok(done.rows_affected())
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

async fn superuser(fx: &mut Fixture) -> String {
    sqlx::query_scalar("SELECT format('%I', current_user)")
        .fetch_one(&mut fx.admin)
        .await
        .expect("current_user")
}

/// The id of one of tenant-b's notes, as the superuser sees it.
async fn a_note_of_b(fx: &mut Fixture) -> i64 {
    sqlx::query_scalar("SELECT min(id) FROM notes WHERE tenant_id = $1")
        .bind(B)
        .fetch_one(&mut fx.admin)
        .await
        .expect("b's note")
}

// ---------------------------------------------------------------------------
// Roles and membership
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_restrictive_policy_for_a_role_the_app_does_not_inherit_narrows_nothing() {
    // Role attributes are cluster-wide: a private cluster.
    let cluster = TestCluster::start().await.expect("private cluster");
    let fx = fixture_in(&cluster, None, false).await;
    // PostgreSQL 16 made inheritance a property of each grant.
    let per_grant = cluster.server_version_num().await.expect("version") >= 160_000;
    exec(
        fx.db.admin_url(),
        &if per_grant {
            format!(
                "CREATE ROLE tenant_members NOLOGIN;\n\
                 GRANT tenant_members TO {APP_ROLE} WITH INHERIT FALSE;"
            )
        } else {
            format!(
                "CREATE ROLE tenant_members NOLOGIN;\n\
                 GRANT tenant_members TO {APP_ROLE};\n\
                 ALTER ROLE {APP_ROLE} NOINHERIT;"
            )
        },
    )
    .await;
    // Open to everyone, narrowed to the tenant for the members' group.
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE docs (tenant_id text NOT NULL, body text NOT NULL);\n\
             ALTER TABLE docs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n\
             GRANT SELECT, INSERT ON docs TO {APP_ROLE};\n\
             CREATE POLICY docs_open ON docs USING (true) WITH CHECK (true);\n\
             CREATE POLICY docs_tenant ON docs AS RESTRICTIVE TO tenant_members \
               USING (tenant_id = NULLIF(current_setting('app.current_tenant', true), '')) \
               WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''));\n\
             INSERT INTO docs VALUES ('tenant-a', 'a'), ('tenant-b', 'b1'), ('tenant-b', 'b2');"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(count_as(&pool, A, "SELECT count(*) FROM docs").await, 3);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings[2],
        Finding::RestrictivePolicyNotInherited {
            table: "public.docs".into(),
            policy: "docs_tenant".into(),
            roles: vec!["tenant_members".into()],
            role: APP_ROLE.into(),
        },
        "{report}"
    );
    assert_eq!(
        report.codes(),
        [
            "PERMISSIVE_POLICY_TRUE",
            "PERMISSIVE_POLICY_TRUE",
            "RESTRICTIVE_POLICY_NOT_INHERITED"
        ],
        "{report}"
    );
    assert!(report
        .to_string()
        .contains(&format!("ALTER ROLE {APP_ROLE} INHERIT")));

    // The fix: the pool's role inherits the group's rights.
    let fix = if per_grant {
        format!("GRANT tenant_members TO {APP_ROLE} WITH INHERIT TRUE")
    } else {
        format!("ALTER ROLE {APP_ROLE} INHERIT")
    };
    assert!(report.to_string().contains(&fix), "{report}");
    exec(fx.db.admin_url(), &fix).await;
    let pool = fx.pool(1).await;
    assert_eq!(count_as(&pool, A, "SELECT count(*) FROM docs").await, 1);
}

#[tokio::test]
async fn a_definer_function_of_a_role_with_its_own_open_policy_reads_every_tenant() {
    let fx = fixture().await;
    let reporter = format!("rep_{}", fx.db.name());
    exec(
        fx.db.admin_url(),
        &format!(
            "CREATE ROLE {reporter} NOLOGIN;\n\
             GRANT SELECT ON public.notes TO {reporter};\n\
             CREATE POLICY reporter_all ON public.notes FOR SELECT TO {reporter} USING (true);\n\
             CREATE FUNCTION public.note_total() RETURNS bigint LANGUAGE sql STABLE \
               SECURITY DEFINER AS 'SELECT count(*) FROM public.notes';\n\
             ALTER FUNCTION public.note_total() OWNER TO {reporter};"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, A, "SELECT public.note_total()").await,
        ALL_ROWS
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::DefinerOwnerPolicyUnbound {
            function: "public.note_total()".into(),
            owner: reporter.clone(),
            table: "public.notes".into(),
            policy: "reporter_all".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report.to_string().contains(&format!(
        "REVOKE EXECUTE ON ROUTINE public.note_total() FROM PUBLIC, {APP_ROLE}"
    )));
}

#[tokio::test]
async fn a_definer_function_without_search_path_can_be_made_to_switch_tenants() {
    let fx = fixture().await;
    // A definer function as a gate to a table the application may not
    // read, filtering by the tenant; the application may create in
    // `public` (as every role could before PostgreSQL 15).
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE SCHEMA private;\n\
             CREATE TABLE private.billing (tenant text NOT NULL, card text NOT NULL);\n\
             INSERT INTO private.billing VALUES ('tenant-a', 'a'), ('tenant-b', 'b1'), ('tenant-b', 'b2');\n\
             CREATE FUNCTION public.my_cards() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER \
               AS $$ SELECT count(*) FROM private.billing \
                     WHERE tenant = current_setting('app.current_tenant') $$;\n\
             GRANT CREATE ON SCHEMA public TO {APP_ROLE};"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(count_as(&pool, A, "SELECT public.my_cards()").await, 1);
    // SQL run by tenant-a shadows current_setting in front of pg_catalog.
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    for statement in [
        "CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE sql \
           AS $$ SELECT 'tenant-b'::text $$",
        "SET LOCAL search_path = public, pg_catalog",
    ] {
        sqlx::query(statement)
            .execute(&mut tx)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let seen: i64 = sqlx::query_scalar("SELECT public.my_cards()")
        .fetch_one(&mut tx)
        .await
        .expect("call");
    tx.rollback().await.expect("rollback");
    assert_eq!(seen, 2, "tenant-a counted tenant-b's cards");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::DefinerSearchPathWritable {
            function: "public.my_cards()".into(),
            search_path: None,
            schemas: vec!["public".into()],
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report
        .to_string()
        .contains("ALTER ROUTINE public.my_cards() SET search_path = pg_catalog, pg_temp"));

    // The fix.
    exec(
        fx.db.owner_url(),
        "ALTER FUNCTION public.my_cards() SET search_path = pg_catalog, pg_temp",
    )
    .await;
    assert!(fx.pool(1).await.audit_report().is_clean());
}

#[tokio::test]
async fn a_definer_trigger_writes_other_tenants_rows_without_execute() {
    let mut fx = fixture().await;
    exec(
        fx.db.admin_url(),
        "CREATE FUNCTION public.touch_others() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
           SET search_path = pg_catalog AS $$ BEGIN \
             UPDATE public.notes SET body = 'touched' WHERE tenant_id <> NEW.tenant_id; \
             RETURN NEW; END $$;\n\
         REVOKE EXECUTE ON FUNCTION public.touch_others() FROM PUBLIC;\n\
         CREATE TRIGGER touch AFTER INSERT ON public.notes \
           FOR EACH ROW EXECUTE FUNCTION public.touch_others();",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    run_as(
        &pool,
        A,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-a', 'new', 'x')",
    )
    .await
    .expect("insert");
    let touched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notes WHERE tenant_id = 'tenant-b' AND body = 'touched'",
    )
    .fetch_one(&mut fx.admin)
    .await
    .expect("count");
    assert_eq!(
        touched, SEED[1].1,
        "tenant-a's insert rewrote tenant-b's rows"
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::SecurityDefinerTrigger {
            function: "public.touch_others()".into(),
            trigger: "touch".into(),
            table: "public.notes".into(),
            owner: superuser(&mut fx).await,
            rights: DefinerRights::Superuser,
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report
        .to_string()
        .contains("ALTER FUNCTION public.touch_others() SECURITY INVOKER"));
}

// ---------------------------------------------------------------------------
// Tables the audit did not see as tenant tables
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_inheritance_parent_without_the_tenant_column_reads_every_child_row() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE docs_base (body text NOT NULL);\n\
             CREATE TABLE docs (tenant_id text NOT NULL) INHERITS (docs_base);\n{}\
             GRANT SELECT ON docs_base TO {APP_ROLE};",
            RlsPolicy::new("docs", "tenant_id").grant_to(APP_ROLE).sql()
        ),
    )
    .await;
    exec(
        fx.db.admin_url(),
        "INSERT INTO docs (tenant_id, body) VALUES ('tenant-a', 'a'), ('tenant-b', 'b1'), ('tenant-b', 'b2')",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(count_as(&pool, A, "SELECT count(*) FROM docs").await, 1);
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM docs_base").await,
        3
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::InheritanceParentWithoutTenant {
            parent: "public.docs_base".into(),
            children: vec!["public.docs".into()],
            column: "tenant_id".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report.to_string().contains(&format!(
        "REVOKE ALL ON public.docs_base FROM PUBLIC, {APP_ROLE}"
    )));
}

#[tokio::test]
async fn large_objects_are_shared_by_every_tenant() {
    let fx = fixture().await;
    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let oid: i64 = sqlx::query_scalar("SELECT lo_from_bytea(0, 'tenant-a secret')::int8")
        .fetch_one(&mut tx)
        .await
        .expect("lo_from_bytea");
    tx.commit().await.expect("commit");
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.expect("begin");
    let read: Vec<u8> = sqlx::query_scalar("SELECT lo_get($1::oid)")
        .bind(oid)
        .fetch_one(&mut tx)
        .await
        .expect("lo_get");
    tx.rollback().await.expect("rollback");
    assert_eq!(read, b"tenant-a secret", "tenant-b read tenant-a's object");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::LargeObjectsAccessible {
            total: 1,
            objects: vec![oid.to_string()],
            role: APP_ROLE.into(),
        }],
        "{report}"
    );

    // A large-object function granted to the role is refused too.
    exec(
        fx.db.admin_url(),
        &format!("SELECT lo_unlink({oid}); GRANT EXECUTE ON FUNCTION lo_get(oid) TO {APP_ROLE};"),
    )
    .await;
    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::LargeObjectFunctionGranted {
            function: "lo_get(oid)".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_rule_reads_an_owner_only_table_with_the_owners_rights() {
    let fx = fixture().await;
    // `secrets` has row-level security but does not force it, and the
    // application may not touch it: not a table the audit checks itself.
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE secrets (tenant_id text NOT NULL, secret text NOT NULL);\n\
             ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;\n\
             CREATE POLICY secrets_tenant ON secrets \
               USING (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''));\n\
             INSERT INTO secrets VALUES ('tenant-a', 'a'), ('tenant-b', 'b1'), ('tenant-b', 'b2');\n\
             CREATE TABLE inbox (msg text);\n\
             GRANT INSERT ON inbox TO {APP_ROLE};\n\
             CREATE RULE peek AS ON INSERT TO inbox DO INSTEAD SELECT tenant_id, secret FROM secrets;"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    // The simple protocol returns the rule's rows (the extended one
    // describes an INSERT, with no rows).
    let rows = sqlx::raw_sql("INSERT INTO inbox VALUES ('hello')")
        .fetch_all(&mut tx)
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    let tenants: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, 0))
        .collect();
    assert_eq!(tenants, [A, B, B], "tenant-a read tenant-b's secrets");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::RuleReadsTenantTable {
            rule: "peek".into(),
            table: "public.inbox".into(),
            owner: OWNER_ROLE.into(),
            tables: vec!["public.secrets".into()],
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report
        .to_string()
        .contains("DROP RULE peek ON public.inbox"));
}

// ---------------------------------------------------------------------------
// Comparisons that do not mean equality
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_nondeterministic_collation_lets_one_tenant_id_match_another() {
    let fx = fixture().await;
    let mut owner = {
        use sqlx::Connection as _;
        sqlx::PgConnection::connect(fx.db.owner_url())
            .await
            .expect("owner")
    };
    let created = sqlx::raw_sql(
        "CREATE COLLATION public.loose (provider = icu, locale = 'und-u-ka-shifted', \
           deterministic = false)",
    )
    .execute(&mut owner)
    .await;
    if let Err(e) = created {
        // Without ICU PostgreSQL has no nondeterministic collation at all.
        assert!(e.to_string().contains("ICU is not supported"), "{e}");
        eprintln!("this server has no ICU: nothing to show ({e})");
        return;
    }
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE orgs (tenant_id text COLLATE public.loose NOT NULL, body text NOT NULL);\n{}",
            RlsPolicy::new("orgs", "tenant_id").grant_to(APP_ROLE).sql()
        ),
    )
    .await;
    exec(
        fx.db.admin_url(),
        "INSERT INTO orgs VALUES ('acme', 'one'), ('acme', 'two')",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, "ac-me", "SELECT count(*) FROM orgs").await,
        2
    );

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::TenantColumnNondeterministic {
            table: "public.orgs".into(),
            column: "tenant_id".into(),
            collation: "public.loose".into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_policy_casting_the_tenant_to_name_confuses_long_ids() {
    let fx = fixture().await;
    let short = "a".repeat(63);
    let long = format!("{short}b");
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE keyed (tenant_id text NOT NULL, body text NOT NULL);\n\
             ALTER TABLE keyed ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n\
             GRANT SELECT, INSERT ON keyed TO {APP_ROLE};\n\
             CREATE POLICY keyed_tenant ON keyed \
               USING (tenant_id = current_setting('app.current_tenant', true)::name) \
               WITH CHECK (tenant_id = current_setting('app.current_tenant', true)::name);\n\
             CREATE INDEX ON keyed (tenant_id);"
        ),
    )
    .await;
    exec(
        fx.db.admin_url(),
        &format!("INSERT INTO keyed VALUES ('{short}', 'the 63-byte tenant''s row')"),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    assert_eq!(
        count_as(&pool, &long, "SELECT count(*) FROM keyed").await,
        1
    );

    let report = refused(&fx).await;
    let lossy = |clause| Finding::PolicyLossyCast {
        table: "public.keyed".into(),
        policy: "keyed_tenant".into(),
        clause,
        cast: "name".into(),
    };
    assert_eq!(
        report.findings,
        [lossy(PolicyClause::Using), lossy(PolicyClause::WithCheck)],
        "{report}"
    );
}

// ---------------------------------------------------------------------------
// Side channels and cross-tenant blocking
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_unique_key_without_the_tenant_column_tells_other_tenants_values() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        "CREATE UNIQUE INDEX notes_global_slug ON notes (slug)",
    )
    .await;

    let pool = leaky_pool(&fx).await;
    let taken = run_as(
        &pool,
        A,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-a', 'tenant-b-1', 'probe')",
    )
    .await
    .expect_err("tenant-b holds that slug");
    assert_eq!(sqlstate(&taken).as_deref(), Some("23505"), "{taken}");
    run_as(
        &pool,
        A,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-a', 'tenant-b-999', 'probe')",
    )
    .await
    .expect("nobody holds that one");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::UniqueKeyWithoutTenant {
            index: "public.notes_global_slug".into(),
            table: "public.notes".into(),
            definition: "CREATE UNIQUE INDEX notes_global_slug ON public.notes USING btree (slug)"
                .into(),
            column: "tenant_id".into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_foreign_key_from_a_table_without_tenant_column_probes_other_tenants() {
    let mut fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE TABLE likes (owner text NOT NULL, note_id bigint NOT NULL, \
               CONSTRAINT likes_note FOREIGN KEY (owner, note_id) REFERENCES notes (tenant_id, id));\n\
             GRANT SELECT, INSERT ON likes TO {APP_ROLE};"
        ),
    )
    .await;
    let b_note = a_note_of_b(&mut fx).await;

    let pool = leaky_pool(&fx).await;
    run_as(
        &pool,
        A,
        &format!("INSERT INTO likes VALUES ('tenant-b', {b_note})"),
    )
    .await
    .expect("tenant-b's note exists");
    let missing = run_as(&pool, A, "INSERT INTO likes VALUES ('tenant-b', 999999)")
        .await
        .expect_err("no such note");
    assert_eq!(sqlstate(&missing).as_deref(), Some("23503"), "{missing}");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::ForeignKeyFromNonTenantTable {
            constraint: "likes_note".into(),
            table: "public.likes".into(),
            references: "public.notes".into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn references_and_create_let_the_app_probe_other_tenants() {
    let mut fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "GRANT REFERENCES ON notes TO {APP_ROLE};\nGRANT CREATE ON SCHEMA public TO {APP_ROLE};"
        ),
    )
    .await;
    let b_note = a_note_of_b(&mut fx).await;

    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::query(
        "CREATE TABLE public.probe (t text, i bigint, FOREIGN KEY (t, i) REFERENCES public.notes (tenant_id, id))",
    )
    .execute(&mut tx)
    .await
    .expect("a foreign key of the app's own");
    sqlx::query(&format!(
        "INSERT INTO public.probe VALUES ('tenant-b', {b_note})"
    ))
    .execute(&mut tx)
    .await
    .expect("tenant-b's note exists");
    let missing = sqlx::query("INSERT INTO public.probe VALUES ('tenant-b', 999999)")
        .execute(&mut tx)
        .await
        .expect_err("no such note");
    assert_eq!(sqlstate(&missing).as_deref(), Some("23503"), "{missing}");
    drop(tx);

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::ReferencesAllowed {
            table: "public.notes".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn a_sequence_the_app_may_setval_breaks_other_tenants_inserts() {
    let mut fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!("GRANT UPDATE ON SEQUENCE notes_id_seq TO {APP_ROLE}"),
    )
    .await;
    let b_note = a_note_of_b(&mut fx).await;

    let pool = leaky_pool(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    let _: i64 = sqlx::query_scalar(&format!("SELECT setval('notes_id_seq', {b_note}, false)"))
        .fetch_one(&mut tx)
        .await
        .expect("setval");
    tx.commit().await.expect("commit");
    let err = run_as(
        &pool,
        B,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-b', 'fresh', 'x')",
    )
    .await
    .expect_err("tenant-b's insert collides");
    assert_eq!(sqlstate(&err).as_deref(), Some("23505"), "{err}");

    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::SequenceUpdateAllowed {
            sequence: "public.notes_id_seq".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
}

#[tokio::test]
async fn trigger_and_create_let_the_app_copy_other_tenants_writes() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "GRANT TRIGGER ON notes TO {APP_ROLE};\nGRANT CREATE ON SCHEMA public TO {APP_ROLE};"
        ),
    )
    .await;

    let pool = leaky_pool(&fx).await;
    // Tenant-a's SQL plants a trigger that runs inside everyone's inserts.
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.expect("begin");
    sqlx::raw_sql(
        "CREATE TABLE public.copied (tenant_id text, body text);
         CREATE FUNCTION public.copy_note() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO public.copied VALUES (NEW.tenant_id, NEW.body); RETURN NEW; END $$;
         CREATE TRIGGER copy_note AFTER INSERT ON public.notes
           FOR EACH ROW EXECUTE FUNCTION public.copy_note();",
    )
    .execute(&mut tx)
    .await
    .expect("plant the trigger");
    tx.commit().await.expect("commit");
    run_as(
        &pool,
        B,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-b', 'private', 'b''s secret')",
    )
    .await
    .expect("tenant-b's insert");
    let copied: Vec<String> = {
        let mut tx = pool.begin(&a).await.expect("begin");
        let rows = sqlx::query_scalar("SELECT body FROM public.copied")
            .fetch_all(&mut tx)
            .await
            .expect("read the copy");
        tx.rollback().await.expect("rollback");
        rows
    };
    assert_eq!(copied, ["b's secret"], "tenant-a read tenant-b's write");

    exec(
        fx.db.admin_url(),
        "DROP TRIGGER copy_note ON public.notes; DROP FUNCTION public.copy_note(); \
         DROP TABLE public.copied;",
    )
    .await;
    let report = refused(&fx).await;
    assert_eq!(
        report.findings,
        [Finding::TriggerAllowed {
            table: "public.notes".into(),
            role: APP_ROLE.into(),
        }],
        "{report}"
    );
    assert!(report.to_string().contains(&format!(
        "REVOKE TRIGGER ON public.notes FROM PUBLIC, {APP_ROLE}"
    )));
}

// ---------------------------------------------------------------------------
// Safe schemas the audit accepts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_view_owned_by_the_table_owner_is_filtered_and_accepted() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        &format!(
            "CREATE VIEW owner_slugs AS SELECT tenant_id, slug FROM notes;\n\
             GRANT SELECT ON owner_slugs TO {APP_ROLE};"
        ),
    )
    .await;
    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    assert_eq!(
        count_as(&pool, A, "SELECT count(*) FROM owner_slugs").await,
        SEED[0].1
    );
    assert_eq!(
        count_as(&pool, B, "SELECT count(*) FROM owner_slugs").await,
        SEED[1].1
    );
}

#[tokio::test]
async fn a_definer_function_of_the_table_owner_is_filtered_and_accepted() {
    let fx = fixture().await;
    exec(
        fx.db.owner_url(),
        "CREATE FUNCTION public.my_note_count() RETURNS bigint LANGUAGE sql STABLE \
           SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT count(*) FROM public.notes'",
    )
    .await;
    let pool = fx.pool(1).await;
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    assert_eq!(
        count_as(&pool, A, "SELECT public.my_note_count()").await,
        SEED[0].1
    );
    assert_eq!(
        count_as(&pool, B, "SELECT public.my_note_count()").await,
        SEED[1].1
    );
}
