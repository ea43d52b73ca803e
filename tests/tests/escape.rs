//! A hostile application developer, at run time, on a real PostgreSQL and
//! a pool of ONE connection: every attempt to carry state, a session or a
//! transaction from one tenant's work to another's. Each case asserts that
//! no foreign row was read (or written) and that the next borrower of the
//! connection, tenant B, gets a clean session.
//!
//! The compile-time half of the suite is `ui-tests/fail/escape/`.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{ctx, fixture, Fixture, SEED};
use sqlx::Row;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{TenantPool, TenantTx};
use tenant_testing::APP_ROLE;

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// Everything the next borrower (tenant B) may see of its session, checked
/// in one statement, then a write that must succeed. Commits the write so
/// that a read-only or aborted transaction cannot pass unnoticed.
async fn assert_next_borrower_is_clean(fx: &mut Fixture, pool: &TenantPool, what: &str) {
    assert_eq!(
        fx.settle(pool).await,
        0,
        "{what}: a connection was left inside a transaction"
    );
    let b = ctx(B);
    let mut tx = pool
        .begin(&b)
        .await
        .unwrap_or_else(|e| panic!("{what}: the next begin failed: {e}"));
    #[derive(Debug)]
    struct Seen {
        tenant: Option<String>,
        agent: Option<String>,
        read_only: String,
        isolation: String,
        deferrable: String,
        current: String,
        session: String,
        prepared_by_hand: i64,
        listening: i64,
        advisory_locks: i64,
        temp_tables: i64,
        cursors: i64,
        foreign: i64,
        own: i64,
    }
    let row = sqlx::query(
        "SELECT current_setting('app.current_tenant', true) AS tenant,
                current_setting('app.current_agent', true) AS agent,
                current_setting('transaction_read_only') AS read_only,
                current_setting('transaction_isolation') AS isolation,
                current_setting('transaction_deferrable') AS deferrable,
                current_user::text AS current,
                session_user::text AS session,
                (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared_by_hand,
                (SELECT count(*) FROM pg_listening_channels()) AS listening,
                (SELECT count(*) FROM pg_locks
                  WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
                (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.oid = pg_my_temp_schema()) AS temp_tables,
                (SELECT count(*) FROM pg_cursors WHERE is_holdable) AS cursors,
                (SELECT count(*) FROM notes WHERE tenant_id <> 'tenant-b') AS foreign,
                (SELECT count(*) FROM notes WHERE tenant_id = 'tenant-b') AS own",
    )
    .fetch_one(&mut tx)
    .await
    .unwrap_or_else(|e| panic!("{what}: the next borrower cannot query: {e}"));
    let seen = Seen {
        tenant: row.get("tenant"),
        agent: row.get("agent"),
        read_only: row.get("read_only"),
        isolation: row.get("isolation"),
        deferrable: row.get("deferrable"),
        current: row.get("current"),
        session: row.get("session"),
        prepared_by_hand: row.get("prepared_by_hand"),
        listening: row.get("listening"),
        advisory_locks: row.get("advisory_locks"),
        temp_tables: row.get("temp_tables"),
        cursors: row.get("cursors"),
        foreign: row.get("foreign"),
        own: row.get("own"),
    };
    assert_eq!(seen.tenant.as_deref(), Some(B), "{what}: {seen:?}");
    assert!(
        seen.agent.as_deref().unwrap_or("").is_empty(),
        "{what}: {seen:?}"
    );
    assert_eq!(seen.read_only, "off", "{what}: {seen:?}");
    assert_eq!(seen.isolation, "read committed", "{what}: {seen:?}");
    assert_eq!(seen.deferrable, "off", "{what}: {seen:?}");
    assert_eq!(
        (seen.current.as_str(), seen.session.as_str()),
        (APP_ROLE, APP_ROLE),
        "{what}: {seen:?}"
    );
    assert_eq!(seen.prepared_by_hand, 0, "{what}: {seen:?}");
    assert_eq!(seen.listening, 0, "{what}: {seen:?}");
    assert_eq!(seen.advisory_locks, 0, "{what}: {seen:?}");
    assert_eq!(seen.temp_tables, 0, "{what}: {seen:?}");
    assert_eq!(seen.cursors, 0, "{what}: {seen:?}");
    assert_eq!(seen.foreign, 0, "{what}: {seen:?}");
    assert!(seen.own >= SEED[1].1, "{what}: {seen:?}");
    let lastval = sqlx::query_scalar::<_, i64>("SELECT lastval()")
        .fetch_one(&mut tx)
        .await;
    assert!(
        lastval.is_err(),
        "{what}: lastval() told B of an earlier insert: {lastval:?}"
    );
    drop(tx);
    // A write, committed, then seen by the superuser.
    let mut tx = pool.begin(&b).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, $2, 'probe')")
        .bind(B)
        .bind(format!("probe-{}", rand::random::<u64>()))
        .execute(&mut tx)
        .await
        .unwrap_or_else(|e| panic!("{what}: the next borrower cannot write: {e}"));
    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("{what}: the next borrower cannot commit: {e}"));
    assert_eq!(fx.settle(pool).await, 0, "{what}: after the probe");
}

/// Runs `sql` (one or more statements) in a transaction of tenant A and
/// commits, as a hostile borrower would; returns the commit's result.
async fn a_runs(pool: &TenantPool, sql: &str) -> Result<(), tenant_sqlx::Error> {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await?;
    sqlx::raw_sql(sql).execute(&mut tx).await?;
    tx.commit().await
}

/// The rows tenant A can see are A's own: what every case checks of A's
/// side, so that nothing "works" by reading another tenant's rows.
async fn a_sees_only_its_rows(pool: &TenantPool) {
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let foreign: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE tenant_id <> $1")
        .bind(A)
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(foreign, 0);
    tx.rollback().await.unwrap();
}

async fn one_connection(fx: &Fixture) -> TenantPool {
    fx.pool(1).await
}

// ---------------------------------------------------------------------
// Session state an earlier borrower leaves on purpose (issue items 5, 6).
// ---------------------------------------------------------------------

#[tokio::test]
async fn session_read_only_default_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(&pool, "SET default_transaction_read_only = on")
        .await
        .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SET default_transaction_read_only").await;
}

#[tokio::test]
async fn session_read_only_default_survives_no_rollback_by_b() {
    // B rolls back (undoing its own clearing); the borrower after still
    // runs read-write.
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET default_transaction_read_only = on",
    )
    .await
    .unwrap();
    let b = ctx(B);
    let tx = pool.begin(&b).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = pool.begin(&b).await.unwrap();
    drop(tx);
    assert_next_borrower_is_clean(&mut fx, &pool, "read only, B rolled back").await;
}

#[tokio::test]
async fn session_isolation_default_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SERIALIZABLE by default").await;
}

#[tokio::test]
async fn session_characteristics_do_not_reach_b_after_a_commit_or_a_rollback() {
    // The begin does not clear them: the end of A's transaction does (its
    // commit message resets every setting; a rollback undoes the SET).
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let all = "SET SESSION CHARACTERISTICS AS TRANSACTION \
               ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE; \
               SET default_transaction_deferrable = on";
    a_runs(&pool, all).await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "characteristics, A committed").await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::raw_sql(all).execute(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "characteristics, A rolled back").await;
}

#[tokio::test]
async fn characteristics_pinned_at_connect_outrank_stored_defaults() {
    // With all three `default_transaction_*` pinned in the start-up
    // options, the begin is a bare BEGIN; a default stored for the role
    // afterwards still shapes no transaction, and a SET by a borrower does
    // not reach the next one.
    let mut fx = fixture().await;
    let db = fx.db.name().to_owned();
    let options: sqlx::postgres::PgConnectOptions = fx.db.app_url().parse().unwrap();
    let options = options.options([
        ("default_transaction_isolation", "read\\ committed"),
        ("default_transaction_read_only", "off"),
        ("default_transaction_deferrable", "off"),
    ]);
    sqlx::raw_sql(&format!(
        "ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET default_transaction_read_only = on; \
         ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" SET default_transaction_isolation = serializable"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
    let pool = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect_with(options)
        .await
        .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "stored defaults, pinned").await;
    a_runs(
        &pool,
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SET SESSION CHARACTERISTICS, pinned").await;
    sqlx::raw_sql(&format!(
        "ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" RESET ALL"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn hand_made_prepared_statement_is_not_visible_to_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "PREPARE secret AS SELECT 'tenant-a-secret-literal', count(*) FROM notes",
    )
    .await
    .unwrap();
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    let executed = sqlx::raw_sql("EXECUTE secret").execute(&mut tx).await;
    assert!(executed.is_err(), "B executed A's prepared statement");
    drop(tx);
    assert_next_borrower_is_clean(&mut fx, &pool, "PREPARE").await;
}

#[tokio::test]
async fn prepared_statement_made_inside_a_do_block_is_not_visible_to_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "DO $$ BEGIN EXECUTE 'PREPARE hidden AS SELECT ''tenant-a'''; END $$",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "PREPARE in DO").await;
}

#[tokio::test]
async fn listen_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(&pool, "LISTEN tenant_a_events").await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "LISTEN").await;
}

#[tokio::test]
async fn session_advisory_lock_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(&pool, "SELECT pg_advisory_lock(4242)")
        .await
        .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "advisory lock").await;
    // And the lock is really gone, not merely on another backend.
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert!(free, "A's session lock is still held");
}

#[tokio::test]
async fn lastval_does_not_tell_b_of_a_insert() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    // An ordinary insert: the serial default calls nextval, no word in the
    // statement says so.
    a_runs(
        &pool,
        "INSERT INTO notes (tenant_id, slug, body) VALUES ('tenant-a', 'a-last', 'x')",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "lastval").await;
}

#[tokio::test]
async fn deallocate_all_by_hand_never_breaks_later_borrowers() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    // Fill sqlx's statement cache first, so that there is something to lose.
    for _ in 0..3 {
        assert_next_borrower_is_clean(&mut fx, &pool, "warm-up").await;
    }
    a_runs(&pool, "DEALLOCATE ALL").await.unwrap();
    for i in 0..5 {
        assert_next_borrower_is_clean(&mut fx, &pool, &format!("after DEALLOCATE ALL, #{i}")).await;
    }
}

#[tokio::test]
async fn refused_commit_then_discard_all_by_hand_never_breaks_later_borrowers() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    for _ in 0..3 {
        assert_next_borrower_is_clean(&mut fx, &pool, "warm-up").await;
    }
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let refused = sqlx::raw_sql("COMMIT").execute(&mut tx).await.unwrap_err();
    assert_eq!(
        tenant_sqlx::Error::from(refused).code(),
        "TRANSACTION_CONTROL_REFUSED"
    );
    // Still inside the transaction, where the server refuses DISCARD ALL
    // (and aborts the transaction).
    sqlx::raw_sql("DISCARD ALL")
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(tx.commit().await.unwrap_err().code(), "TRANSACTION_ABORTED");
    for i in 0..5 {
        assert_next_borrower_is_clean(&mut fx, &pool, &format!("after DISCARD ALL, #{i}")).await;
    }
}

#[tokio::test]
async fn temp_table_shadowing_the_tenant_table_does_not_reach_b() {
    // A temporary table is not under RLS and comes first in the search path:
    // a copy of A's rows named `notes` would be what B's `FROM notes` reads.
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "CREATE TEMP TABLE notes ON COMMIT PRESERVE ROWS AS SELECT * FROM public.notes",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "temp table").await;
}

#[tokio::test]
async fn with_hold_cursor_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "DECLARE a_rows CURSOR WITH HOLD FOR SELECT * FROM notes",
    )
    .await
    .unwrap();
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    let fetched = sqlx::raw_sql("FETCH ALL FROM a_rows")
        .execute(&mut tx)
        .await;
    assert!(fetched.is_err(), "B fetched from A's cursor");
    drop(tx);
    assert_next_borrower_is_clean(&mut fx, &pool, "WITH HOLD cursor").await;
}

#[tokio::test]
async fn session_level_agent_setting_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "SELECT set_config('app.current_agent', 'agent-of-a', false); SET app.current_tenant = 'tenant-a'",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "session-level settings").await;
}

#[tokio::test]
async fn set_role_does_not_reach_b() {
    let mut fx = fixture().await;
    // A role the application role belongs to (neither superuser nor
    // BYPASSRLS, so the audit lets it be), with rights of its own.
    let helper = format!("escape_helper_{}", rand::random::<u32>());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {helper} NOLOGIN; GRANT {helper} TO {APP_ROLE}; \
         GRANT SELECT ON notes TO {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
    let pool = one_connection(&fx).await;
    a_runs(&pool, &format!("SET ROLE {helper}")).await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SET ROLE").await;
    sqlx::raw_sql(&format!(
        "REVOKE SELECT ON notes FROM {helper}; REVOKE {helper} FROM {APP_ROLE}; DROP ROLE {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
}

/// The pool's role gains a membership after the pool started: a `SET ROLE`
/// written in the transaction still does not reach B (the commit resets
/// the role when a statement mentions one).
#[tokio::test]
async fn set_role_after_a_membership_granted_later_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    assert_next_borrower_is_clean(&mut fx, &pool, "before the grant").await;
    let helper = format!("escape_late_{}", rand::random::<u32>());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {helper} NOLOGIN; GRANT {helper} TO {APP_ROLE}; \
         GRANT SELECT ON notes TO {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
    a_runs(&pool, &format!("SET ROLE {helper}")).await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SET ROLE, membership granted later").await;
    a_runs(
        &pool,
        &format!("SELECT set_config('role', '{helper}', false)"),
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "set_config('role')").await;
    sqlx::raw_sql(&format!(
        "REVOKE SELECT ON notes FROM {helper}; REVOKE {helper} FROM {APP_ROLE}; DROP ROLE {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
}

/// A function of the schema switches the role itself, where no statement
/// the application sends says so: the pool's role is a member of that role
/// (seen at connect), so every commit resets the role.
#[tokio::test]
async fn set_role_inside_an_existing_function_does_not_reach_b() {
    let mut fx = fixture().await;
    let helper = format!("escape_fn_{}", rand::random::<u32>());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {helper} NOLOGIN; GRANT {helper} TO {APP_ROLE}; \
         GRANT SELECT ON notes TO {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
    common::exec(
        fx.db.owner_url(),
        &format!(
            "CREATE FUNCTION become_helper() RETURNS void LANGUAGE plpgsql \
             SET search_path = pg_catalog AS $$ BEGIN SET ROLE {helper}; END $$; \
             GRANT EXECUTE ON FUNCTION become_helper() TO {APP_ROLE};"
        ),
    )
    .await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("SELECT become_helper()")
        .execute(&mut tx)
        .await
        .unwrap();
    let current: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(current, helper, "the function did switch the role");
    tx.commit().await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "SET ROLE inside a function").await;
    sqlx::raw_sql(&format!(
        "DROP FUNCTION become_helper(); REVOKE SELECT ON notes FROM {helper}; \
         REVOKE {helper} FROM {APP_ROLE}; DROP ROLE {helper}"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn role_setting_stored_from_a_tenant_transaction_shapes_no_transaction() {
    // Any role may store session defaults for itself, from inside a tenant
    // transaction too (scoped to this test's database here, so that the
    // other tests of this binary are not affected).
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let db = fx.db.name().to_owned();
    a_runs(
        &pool,
        &format!(
            "ALTER ROLE CURRENT_USER IN DATABASE \"{db}\" SET default_transaction_read_only = on; \
             ALTER ROLE CURRENT_USER IN DATABASE \"{db}\" SET default_transaction_deferrable = on"
        ),
    )
    .await
    .unwrap();
    // The pool pins the setting in its start-up options, so the stored
    // value never reaches its sessions and the audit accepts it...
    let fresh = TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
        .expect("pinned: accepted");
    assert!(fresh.audit_report().is_clean(), "{}", fresh.audit_report());
    fresh.close().await;
    // ...and without pinning, new connections start read-only by default
    // (tenant transactions are still read-write: the begin says so) and the
    // audit refuses the stored setting.
    let fresh = TenantPool::builder()
        .max_connections(1)
        .pin_settings(false)
        .connect(fx.db.app_url())
        .await;
    let audit = fresh.expect_err("the audit refuses the stored setting");
    let report = audit.audit_report().expect("an audit failure");
    assert!(
        report.codes().contains(&"SETTING_STORED_FOR_SESSIONS"),
        "{report}"
    );
    pool.close().await;
    let lenient = TenantPool::builder()
        .max_connections(1)
        .pin_settings(false)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    assert_next_borrower_is_clean(&mut fx, &lenient, "stored read-only default").await;
    sqlx::raw_sql(&format!(
        "ALTER ROLE {APP_ROLE} IN DATABASE \"{db}\" RESET ALL"
    ))
    .execute(&mut fx.admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn other_sessions_cannot_read_a_tenant_id_from_pg_stat_activity() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let b = ctx(B);
    // B's transaction is open, its begin message the last thing its backend
    // ran.
    let tx = pool.begin(&b).await.unwrap();
    let other = TenantPool::builder()
        .max_connections(1)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = ctx(A);
    let mut spy = other.begin(&a).await.unwrap();
    let texts: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND usename = current_user",
    )
    .fetch_all(&mut spy)
    .await
    .unwrap();
    assert!(!texts.is_empty(), "B's session is listed");
    for text in &texts {
        assert!(
            !text.as_deref().unwrap_or("").contains(B),
            "another session's tenant id is readable: {text:?}"
        );
    }
    drop(spy);
    drop(tx);
    assert_next_borrower_is_clean(&mut fx, &pool, "pg_stat_activity").await;
}

// ---------------------------------------------------------------------
// Ending the transaction behind the TenantTx.
// ---------------------------------------------------------------------

/// Every spelling of transaction control written by hand is refused before
/// it is sent: the transaction `begin` opened goes on, `commit()` saves what
/// ran before and after, and the next borrower is clean.
#[tokio::test]
async fn transaction_control_by_hand_is_refused_and_commit_saves_everything() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    for statement in common::BY_HAND {
        common::transaction_control_is_refused(&mut fx, &pool, A, statement).await;
        assert_next_borrower_is_clean(&mut fx, &pool, statement).await;
    }
}

/// The same words where they do not start a statement run as usual.
#[tokio::test]
async fn the_same_words_inside_a_statement_run() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    let (case, body): (i32, String) =
        sqlx::query_as("SELECT CASE WHEN true THEN 1 END, 'COMMIT; ROLLBACK; BEGIN' /* END */")
            .fetch_one(&mut tx)
            .await
            .unwrap();
    assert_eq!((case, body.as_str()), (1, "COMMIT; ROLLBACK; BEGIN"));
    sqlx::raw_sql("DO $$ BEGIN PERFORM 1; END $$")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "words inside statements").await;
}

#[tokio::test]
async fn commit_of_a_transaction_the_server_aborted_is_an_error() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, slug, body) VALUES ($1, 'lost-insert', 'x')")
        .bind(A)
        .execute(&mut tx)
        .await
        .unwrap();
    // A statement that times out; its error is ignored by careless code.
    sqlx::raw_sql("SET LOCAL statement_timeout = '50ms'")
        .execute(&mut tx)
        .await
        .unwrap();
    let timed_out = sqlx::query("SELECT pg_sleep(1)").execute(&mut tx).await;
    assert!(timed_out.is_err());
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.code(), "TRANSACTION_ABORTED");
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE slug = 'lost-insert'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(saved, 0, "the insert is not saved, and commit said so");
    assert_next_borrower_is_clean(&mut fx, &pool, "aborted by a timeout").await;
}

// ---------------------------------------------------------------------
// A transaction or context stretched past its request .
// ---------------------------------------------------------------------

/// A context that lives for ever, as `Box::leak` or a `static` gives.
fn leaked(tenant: &str) -> &'static Ctx<Validated> {
    Box::leak(Box::new(ctx(tenant)))
}

static PARKED: Mutex<Option<TenantTx<'static>>> = Mutex::new(None);

#[tokio::test]
async fn transaction_parked_in_a_static_is_refused_in_another_tenants_scope() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let a = leaked(A);
    let tx = pool.begin(a).await.unwrap();
    *PARKED.lock().unwrap() = Some(tx);

    // A handler validated for tenant B takes the parked transaction.
    let b = ctx(B);
    let outcome = b
        .scope(async {
            let mut tx = PARKED.lock().unwrap().take().unwrap();
            let read = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notes")
                .fetch_one(&mut tx)
                .await;
            let write = sqlx::query("UPDATE notes SET body = 'parked'")
                .execute(&mut tx)
                .await;
            let commit = tx.commit().await;
            (read, write, commit)
        })
        .await;
    let code = |e: sqlx::Error| tenant_sqlx::Error::from(e).code();
    assert_eq!(
        outcome.0.map_err(code).unwrap_err(),
        "TENANT_SCOPE_MISMATCH"
    );
    assert_eq!(
        outcome.1.map_err(code).unwrap_err(),
        "TENANT_SCOPE_MISMATCH"
    );
    assert_eq!(outcome.2.unwrap_err().code(), "TENANT_SCOPE_MISMATCH");
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'parked'")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(parked, 0);
    assert_next_borrower_is_clean(&mut fx, &pool, "parked in a static").await;
}

#[tokio::test]
async fn leaked_context_cannot_begin_in_another_tenants_scope() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let a = leaked(A);
    let b = ctx(B);
    let err = b.scope(pool.begin(a)).await.unwrap_err();
    assert_eq!(err.code(), "TENANT_SCOPE_MISMATCH");
    assert!(err.to_string().contains("tenant-a") && err.to_string().contains("tenant-b"));
    // The same context in its own scope (or none) works.
    let tx = a.scope(pool.begin(a)).await.unwrap();
    tx.rollback().await.unwrap();
    a_sees_only_its_rows(&pool).await;
    assert_next_borrower_is_clean(&mut fx, &pool, "leaked context").await;
}

#[tokio::test]
async fn transaction_sent_through_a_channel_is_refused_in_another_tenants_scope() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let (send, recv) = tokio::sync::oneshot::channel::<TenantTx<'static>>();
    let a = leaked(A);
    send.send(pool.begin(a).await.unwrap()).unwrap();
    let b = ctx(B);
    let worker = b.spawn(async move {
        let mut tx = recv.await.unwrap();
        let read = sqlx::query_scalar::<_, String>("SELECT tenant_id FROM notes")
            .fetch_all(&mut tx)
            .await;
        let savepoint = tx.savepoint().await.map(drop);
        (
            read.map_err(|e| tenant_sqlx::Error::from(e).code()),
            savepoint.map_err(|e| e.code()),
        )
    });
    let (read, savepoint) = worker.await.unwrap();
    assert_eq!(read.unwrap_err(), "TENANT_SCOPE_MISMATCH");
    assert_eq!(savepoint.unwrap_err(), "TENANT_SCOPE_MISMATCH");
    assert_next_borrower_is_clean(&mut fx, &pool, "sent through a channel").await;
}

#[tokio::test]
async fn forgotten_transaction_is_never_handed_on() {
    // `mem::forget` keeps the connection out of the pool for good: the next
    // begin waits and times out; it never gets A's open transaction.
    let fx = fixture().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500))
        .connect(fx.db.app_url())
        .await
        .unwrap();
    let a = leaked(A);
    let tx = pool.begin(a).await.unwrap();
    std::mem::forget(tx);
    let b = ctx(B);
    let err = pool.begin(&b).await.unwrap_err();
    assert_eq!(err.code(), "DATABASE");
    assert!(err.to_string().contains("timed out"), "{err}");
}

// ---------------------------------------------------------------------
// Getting past the statement scan.
// ---------------------------------------------------------------------

/// An `Execute` that shows the checks one text and would run another.
struct TwoFaced {
    calls: std::sync::atomic::AtomicU32,
}

impl<'q> sqlx::Execute<'q, sqlx::Postgres> for TwoFaced {
    fn sql(&self) -> &'q str {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            "SELECT 1"
        } else {
            "SELECT pg_advisory_lock(4343)"
        }
    }
    fn statement(&self) -> Option<&sqlx::postgres::PgStatement<'q>> {
        None
    }
    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::postgres::PgArguments>, sqlx::error::BoxDynError> {
        Ok(None)
    }
    fn persistent(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_query_whose_text_changes_runs_what_was_checked() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    let a = ctx(A);
    let mut tx = pool.begin(&a).await.unwrap();
    sqlx::Executor::execute(
        &mut tx,
        TwoFaced {
            calls: Default::default(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "two-faced query").await;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4343)")
        .fetch_one(&mut fx.admin)
        .await
        .unwrap();
    assert!(free, "the second text ran and took the lock");
}

#[tokio::test]
async fn advisory_lock_spelled_with_unicode_escapes_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(&pool, r#"SELECT U&"pg_adv\0069sory_lock"(4444)"#)
        .await
        .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "U& advisory lock").await;
}

#[tokio::test]
async fn advisory_lock_taken_through_sql_assembled_at_run_time_does_not_reach_b() {
    let mut fx = fixture().await;
    let pool = one_connection(&fx).await;
    a_runs(
        &pool,
        "SELECT query_to_xml('SELECT pg_adv' || 'isory_lock(4545)', true, false, '')",
    )
    .await
    .unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "query_to_xml advisory lock").await;
}

/// A function of the schema declares a `WITH HOLD` cursor through
/// `EXECUTE`, where no statement the application sends says so: the cursor
/// would keep A's rows for whoever fetches it next on the connection. The
/// commit closes every cursor, wherever it was declared.
#[tokio::test]
async fn a_hold_cursor_declared_inside_a_function_does_not_reach_b() {
    let mut fx = fixture().await;
    common::exec(
        fx.db.owner_url(),
        &format!(
            "CREATE FUNCTION open_report() RETURNS void LANGUAGE plpgsql \
             SET search_path = public, pg_catalog AS $$ BEGIN \
               EXECUTE 'DECLARE report_cur CURSOR WITH HOLD FOR SELECT tenant_id, body FROM notes'; \
             END $$; \
             GRANT EXECUTE ON FUNCTION open_report() TO {APP_ROLE};"
        ),
    )
    .await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .allow_audit_findings(true)
        .connect(fx.db.app_url())
        .await
        .unwrap();
    a_runs(&pool, "SELECT open_report()").await.unwrap();
    assert_next_borrower_is_clean(&mut fx, &pool, "WITH HOLD cursor inside a function").await;
    // And B cannot fetch it by name.
    let b = ctx(B);
    let mut tx = pool.begin(&b).await.unwrap();
    let err = sqlx::query("FETCH ALL FROM report_cur")
        .fetch_all(&mut tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
