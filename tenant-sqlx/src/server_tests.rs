//! Tests on a real PostgreSQL that need this crate's insides: a session the
//! pool never lent is pushed into it the only way that remains (the
//! crate's own hand-off), and the quoting of values that no public API
//! accepts is checked on the server.
//!
//! Connecting directly, every session of a pool is opened with the pool's
//! own options (so as the role it checked at connect) and the hand-off takes
//! only sessions its own transactions ended on. Behind a transaction pooler
//! a server session may have logged in as anything the pooler maps the
//! client to, so there the begin message checks the role every time: the
//! injection tests run in that mode (which also works connected directly).

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use tenant_core::{Ctx, Validated};

use crate::rls::RlsPolicy;
use crate::sql::set_local_sql;
use crate::stash::Held;
use crate::TenantPool;
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};

/// A database with a `notes` table under the crate's own policy and rows
/// for two tenants.
async fn database() -> TestDatabase {
    let cluster = TestCluster::shared().await.expect("test cluster");
    let db = cluster.create_database().await.expect("test database");
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE notes (id bigserial, tenant_id text NOT NULL, body text, PRIMARY KEY (tenant_id, id));
         {}",
        RlsPolicy::new("notes", "tenant_id")
            .grant_to(APP_ROLE)
            .sql()
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO notes (tenant_id, body)
         SELECT t, 'note' FROM unnest(ARRAY['tenant-a', 'tenant-a', 'tenant-b']) t",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    db
}

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated().with_tenant(tenant).validate().unwrap()
}

/// Backends logged in as `role` on `db`, seen by the superuser.
async fn backends_of(db: &TestDatabase, role: &str) -> i64 {
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
    )
    .bind(role)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// Waits until `role` has no backend on `db` (a closed connection's
/// backend exits shortly after the socket closes).
async fn wait_gone(db: &TestDatabase, role: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if backends_of(db, role).await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Pushes a connection of `foreign` into `pool`'s hand-off, as if the
/// last transaction had ended on it.
async fn inject(pool: &TenantPool, foreign: &PgPool) {
    let conn = foreign.acquire().await.unwrap();
    pool.stash.put(Held {
        conn,
        since: Instant::now(),
        rollback_first: false,
        permit: None,
    });
    assert_eq!(
        pool.stash.len(),
        1,
        "the foreign session is waiting in the pool"
    );
}

#[tokio::test]
async fn a_session_of_another_role_is_closed_never_used() {
    let db = database().await;
    let pool = TenantPool::builder()
        .max_connections(2)
        .transaction_pooler(true)
        .connect(db.app_url())
        .await
        .unwrap();
    // The owner: not a superuser, not a member of the application role,
    // and the owner of the table (so RLS would not apply to it without
    // FORCE).
    let owner = PgPool::connect(db.owner_url()).await.unwrap();
    inject(&pool, &owner).await;
    assert_eq!(backends_of(&db, tenant_testing::OWNER_ROLE).await, 1);

    let a = ctx("tenant-a");
    let mut tx = pool.begin(&a).await.unwrap();
    let (current, session, foreign): (String, String, i64) = sqlx::query_as(
        "SELECT current_user::text, session_user::text,
                (SELECT count(*) FROM notes WHERE tenant_id <> 'tenant-a')",
    )
    .fetch_one(&mut tx)
    .await
    .unwrap();
    assert_eq!((current.as_str(), session.as_str()), (APP_ROLE, APP_ROLE));
    assert_eq!(foreign, 0);
    tx.commit().await.unwrap();
    // The begin on the foreign session failed and closed it; sqlx's pool of
    // the owner now has nothing left of it either.
    owner.close().await;
    assert!(
        wait_gone(&db, tenant_testing::OWNER_ROLE).await,
        "the foreign session was closed"
    );
    // Nothing but the pool's own connections is kept.
    assert!(pool.size() <= 2);
}

#[tokio::test]
async fn a_superuser_session_runs_the_transaction_as_the_pool_role() {
    // A superuser may switch to any role, so its session cannot be told
    // apart without a query; what holds is that the transaction on it runs
    // as the pool's role, under RLS.
    let db = database().await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .transaction_pooler(true)
        .connect(db.app_url())
        .await
        .unwrap();
    let superuser = PgPool::connect(db.admin_url()).await.unwrap();
    inject(&pool, &superuser).await;

    let b = ctx("tenant-b");
    let mut tx = pool.begin(&b).await.unwrap();
    let (current, session, visible, foreign): (String, String, i64, i64) = sqlx::query_as(
        "SELECT current_user::text, session_user::text, (SELECT count(*) FROM notes),
                (SELECT count(*) FROM notes WHERE tenant_id <> 'tenant-b')",
    )
    .fetch_one(&mut tx)
    .await
    .unwrap();
    assert_eq!((current.as_str(), session.as_str()), (APP_ROLE, APP_ROLE));
    assert_eq!((visible, foreign), (1, 0));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn hostile_values_are_inlined_exactly_or_refused() {
    // Identifiers never reach this with such values (they are validated
    // first); the quoting is the last line of defence and is checked on the
    // server here.
    let db = database().await;
    let mut app = PgConnection::connect(db.app_url()).await.unwrap();
    let hostile = [
        "'; DROP TABLE notes; --",
        "' OR '1'='1",
        "''''",
        "$$; DROP TABLE notes; $$",
        "E'\\x27'",
        "\\'; DROP TABLE notes; --",
        "a\0b",
        "line\nbreak",
        "tab\there",
        "\u{202e}evil",
        "zero\u{200b}width",
        "\u{2019}; DROP TABLE notes; --",
        "\u{ff07}; DROP TABLE notes; --",
        "tenant-a",
        "",
    ];
    for value in hostile {
        match set_local_sql("app.current_tenant", value) {
            Ok(set) => {
                let mut tx = app.begin().await.unwrap();
                sqlx::raw_sql(&set).execute(&mut *tx).await.unwrap();
                let got: String =
                    sqlx::query_scalar("SELECT current_setting('app.current_tenant')")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                assert_eq!(got, value, "the value arrives exactly as given");
                tx.rollback().await.unwrap();
            }
            Err(err) => {
                assert_eq!(err.code(), "UNSAFE_SETTING_VALUE");
                assert!(
                    value
                        .chars()
                        .any(|c| c == '\\' || !(' '..='~').contains(&c)),
                    "{value:?} was refused although printable: {err}"
                );
            }
        }
    }
    let still_there: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'notes'")
            .fetch_one(&mut app)
            .await
            .unwrap();
    assert_eq!(still_there, 1);
}

/// The transaction-control lexer against the server itself: random texts
/// made of quotes, comments, dollar quotes and transaction keywords are run
/// inside a transaction, with `standard_conforming_strings` on and off.
/// Whenever the server ended or replaced the transaction, the lexer must
/// have found transaction control (it may refuse more: false alarms only
/// cost a refused statement).
#[tokio::test]
async fn the_transaction_control_lexer_sees_everything_the_server_runs() {
    const PIECES: [&str; 30] = [
        "COMMIT",
        "ROLLBACK",
        "END",
        "ABORT",
        "COMMIT AND CHAIN",
        "ROLLBACK AND CHAIN",
        "BEGIN",
        "START TRANSACTION",
        ";",
        " ",
        "\n",
        "'",
        "''",
        "\\",
        "E'",
        "$$",
        "$a$",
        "/*",
        "*/",
        "--",
        "\"",
        "SELECT 1",
        "SELECT",
        "1",
        "x",
        "(",
        ")",
        "ATOMIC",
        "CASE",
        "\x0b",
    ];
    let db = database().await;
    let mut conn = PgConnection::connect(db.app_url()).await.unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ended, mut checked) = (0, 0);
    for scs in ["on", "off"] {
        sqlx::raw_sql(&format!(
            "SET standard_conforming_strings = {scs}; SET escape_string_warning = off"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        for _ in 0..1500 {
            let n = 2 + next() % 7;
            let text: String = (0..n)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
            let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let _ = sqlx::raw_sql(&text).execute(&mut conn).await;
            let after = sqlx::query_scalar::<_, Option<String>>(
                "SELECT pg_current_xact_id_if_assigned()::text",
            )
            .fetch_one(&mut conn)
            .await;
            // An error here is the same, aborted transaction.
            let same = match &after {
                Ok(Some(x)) => *x == xid,
                Ok(None) => false,
                Err(_) => true,
            };
            checked += 1;
            if !same {
                ended += 1;
                assert!(
                    crate::control::transaction_control(&text).is_some(),
                    "standard_conforming_strings = {scs}: the server ended the \
                     transaction and the lexer saw nothing in {text:?}"
                );
            }
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
        }
    }
    // The generator does reach texts that end the transaction.
    assert!(
        ended > 50,
        "only {ended} of {checked} texts ended the transaction"
    );
}
