//! Conversation memory on the harness, as the application role:
//! its migration passes the audit, messages come back in order with a limit,
//! collections are registered once, `clear` forgets, and two tenants (or two
//! agents) using the same conversation id never see each other's memory.

use sqlx::{Connection, PgConnection};
use tenant_core::{CollectionId, Ctx, Validated, WithAgent, WithConversation};
use tenant_sqlx::memory::{self, ConversationMemory, Role};
use tenant_sqlx::{SettingNames, TenantPool};
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};

type ConvCtx = Ctx<Validated<WithAgent, WithConversation>>;

fn ctx(tenant: &str, agent: &str, conversation: &str) -> ConvCtx {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .with_agent(agent)
        .with_conversation(conversation)
        .validate()
        .expect("valid test context")
}

async fn migrated() -> (TestDatabase, TenantPool) {
    let cluster = TestCluster::shared().await.expect("test cluster");
    let db = cluster.create_database().await.expect("test database");
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    let sql = memory::migration(&SettingNames::default(), APP_ROLE);
    sqlx::raw_sql(&sql).execute(&mut owner).await.unwrap();
    // Idempotent: a second start runs it again without error.
    sqlx::raw_sql(&sql).execute(&mut owner).await.unwrap();
    owner.close().await.unwrap();
    // `connect` runs the audit and refuses on any finding.
    let pool = TenantPool::connect(db.app_url())
        .await
        .expect("the memory migration passes the audit");
    assert!(pool.audit_report().is_clean(), "{}", pool.audit_report());
    (db, pool)
}

#[tokio::test]
async fn messages_come_back_in_order_with_a_limit() {
    let (_db, pool) = migrated().await;
    let c = ctx("acme", "agent-7", "conv-1");
    let m = ConversationMemory::new(&pool, &c);
    let a = m.add_message(Role::User, "first").await.unwrap();
    let b = m.add_message(Role::Assistant, "second").await.unwrap();
    let d = m.add_message(Role::User, "third").await.unwrap();
    assert!(a < b && b < d, "ids increase: {a} {b} {d}");

    let all = m.history(10).await.unwrap();
    let seen: Vec<_> = all.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(
        seen,
        [
            (Role::User, "first"),
            (Role::Assistant, "second"),
            (Role::User, "third")
        ]
    );
    assert!(all[0].created_at <= all[2].created_at);

    let last_two: Vec<_> = m
        .history(2)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(last_two, ["second", "third"]);
}

#[tokio::test]
async fn collections_are_registered_once_and_cleared() {
    let (_db, pool) = migrated().await;
    let c = ctx("acme", "agent-7", "conv-1");
    let m = ConversationMemory::new(&pool, &c);
    let manuals: CollectionId = "manuals".parse().unwrap();
    let faq: CollectionId = "faq".parse().unwrap();
    m.register_collection(&manuals).await.unwrap();
    m.register_collection(&faq).await.unwrap();
    m.register_collection(&manuals).await.unwrap();
    assert_eq!(m.collections().await.unwrap(), [manuals, faq]);

    m.add_message(Role::User, "hello").await.unwrap();
    assert_eq!(m.clear().await.unwrap(), 3, "1 message + 2 collections");
    assert!(m.history(10).await.unwrap().is_empty());
    assert!(m.collections().await.unwrap().is_empty());
}

#[tokio::test]
async fn same_ids_in_two_tenants_never_meet() {
    let (db, pool) = migrated().await;
    let acme = ctx("acme", "agent-7", "conv-1");
    let globex = ctx("globex", "agent-7", "conv-1");
    let other_agent = ctx("acme", "agent-8", "conv-1");
    ConversationMemory::new(&pool, &acme)
        .add_message(Role::User, "acme secret")
        .await
        .unwrap();
    ConversationMemory::new(&pool, &globex)
        .add_message(Role::User, "globex secret")
        .await
        .unwrap();
    ConversationMemory::new(&pool, &globex)
        .register_collection(&"globex-docs".parse().unwrap())
        .await
        .unwrap();

    let acme_history = ConversationMemory::new(&pool, &acme)
        .history(10)
        .await
        .unwrap();
    assert_eq!(acme_history.len(), 1);
    assert_eq!(acme_history[0].content, "acme secret");
    assert!(ConversationMemory::new(&pool, &acme)
        .collections()
        .await
        .unwrap()
        .is_empty());
    assert!(ConversationMemory::new(&pool, &other_agent)
        .history(10)
        .await
        .unwrap()
        .is_empty());

    // Clearing acme's conversation leaves globex's intact.
    ConversationMemory::new(&pool, &acme).clear().await.unwrap();
    let globex_history = ConversationMemory::new(&pool, &globex)
        .history(10)
        .await
        .unwrap();
    assert_eq!(globex_history.len(), 1);

    // Globex's row is really in the table (RLS, not an empty table, hid it
    // from acme) and acme's is gone.
    let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
    let per_tenant: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM tenant_memory_messages GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(per_tenant, [("globex".to_owned(), 1)]);
}

#[tokio::test]
async fn rls_stops_a_message_written_under_another_tenant() {
    // A query written by hand inside acme's transaction that claims to be
    // globex's row is refused by the policy's WITH CHECK.
    let (_db, pool) = migrated().await;
    let acme = ctx("acme", "agent-7", "conv-1");
    let mut tx = pool.begin(&acme).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO tenant_memory_messages (tenant_id, agent_id, conversation_id, role, content) \
         VALUES ('globex', 'agent-7', 'conv-1', 'user', 'forged')",
    )
    .execute(&mut tx)
    .await
    .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42501"), "{err}");
}
