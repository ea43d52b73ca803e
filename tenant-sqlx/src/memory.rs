//! Conversation memory for chat agents: each conversation's messages and the
//! collections it used, stored in PostgreSQL under Row-Level Security
//! instead of in a process-wide context manager looked up by tenant id.
//!
//! A [`ConversationMemory`] is built from a context that guarantees the
//! tenant, the agent and the conversation, so it always knows whose
//! conversation it is; there is no `get_instance(tenant_id=...)` to call with
//! the wrong tenant. Every operation runs in its own
//! [`TenantTx`], so the database filters by tenant too;
//! [`ConversationMemory::add_message_in`] runs in the caller's, to commit a
//! message together with other writes (an outbox event, for example).
//!
//! The tables come with [`migration`], which also creates their RLS
//! policies with [`RlsPolicy`]; a database migrated
//! with it passes the [audit](crate::audit).
//!
//! ```no_run
//! use tenant_core::{Ctx, Validated, WithAgent, WithConversation};
//! use tenant_sqlx::memory::{ConversationMemory, Role};
//! use tenant_sqlx::TenantPool;
//!
//! # async fn demo(pool: TenantPool) -> Result<(), Box<dyn std::error::Error>> {
//! let ctx: Ctx<Validated<WithAgent, WithConversation>> = Ctx::unvalidated()
//!     .with_tenant("acme")
//!     .with_agent("agent-7")
//!     .with_conversation("conv-1")
//!     .validate()?;
//! let memory = ConversationMemory::new(&pool, &ctx);
//! memory.add_message(Role::User, "How do I configure my agent?").await?;
//! for message in memory.history(50).await? {
//!     println!("{}: {}", message.role, message.content);
//! }
//! memory.register_collection(&"manuals".parse()?).await?;
//! # Ok(()) }
//! ```
//!
//! A context that does not guarantee the conversation does not compile:
//!
//! ```compile_fail
//! # use tenant_core::{Ctx, Validated, WithAgent};
//! # use tenant_sqlx::{memory::ConversationMemory, TenantPool};
//! # fn demo(pool: TenantPool, ctx: Ctx<Validated<WithAgent>>) {
//! let memory = ConversationMemory::new(&pool, &ctx); // no conversation
//! # }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenant_core::{CollectionId, Ctx, HasAgent, HasConversation, IsValidated};

use crate::rls::{quote_ident, RlsPolicy, DEFAULT_POLICY_NAME};
use crate::{Error, SettingNames, TenantPool, TenantTx};

/// The table of messages.
pub const MESSAGES_TABLE: &str = "tenant_memory_messages";
/// The table of collections used in a conversation.
pub const COLLECTIONS_TABLE: &str = "tenant_memory_collections";
/// The name of the RLS policy on both tables: [`RlsPolicy`]'s default,
/// [`DEFAULT_POLICY_NAME`].
pub const POLICY_NAME: &str = DEFAULT_POLICY_NAME;

/// The SQL that creates the memory tables, their indexes, their RLS policies
/// (reading the tenant setting named in `settings`) and the grants for
/// `app_role`. Run it once, as the tables' owner (for example through an
/// [`AdminPool`](crate::AdminPool)), never as the application role.
/// Idempotent: safe to run at every start.
///
/// ```
/// use tenant_sqlx::{memory, SettingNames};
/// let sql = memory::migration(&SettingNames::default(), "app");
/// assert!(sql.contains("FORCE ROW LEVEL SECURITY"));
/// ```
pub fn migration(settings: &SettingNames, app_role: &str) -> String {
    migration_for(settings, app_role, false)
}

/// [`migration`], with the policies of [hardened mode](crate::guard) when
/// `hardened` is true (the guard must be installed first, callable by the
/// role that runs this).
pub fn migration_for(settings: &SettingNames, app_role: &str, hardened: bool) -> String {
    let app = quote_ident(app_role);
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {MESSAGES_TABLE} (\n\
         \x20   id bigint GENERATED ALWAYS AS IDENTITY,\n\
         \x20   tenant_id text NOT NULL,\n\
         \x20   agent_id text NOT NULL,\n\
         \x20   conversation_id text NOT NULL,\n\
         \x20   role text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),\n\
         \x20   content text NOT NULL,\n\
         \x20   created_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n\
         \x20   PRIMARY KEY (tenant_id, id)\n\
         );\n\
         CREATE INDEX IF NOT EXISTS {MESSAGES_TABLE}_conversation\n\
         \x20   ON {MESSAGES_TABLE} (tenant_id, agent_id, conversation_id, id);\n\
         CREATE TABLE IF NOT EXISTS {COLLECTIONS_TABLE} (\n\
         \x20   tenant_id text NOT NULL,\n\
         \x20   agent_id text NOT NULL,\n\
         \x20   conversation_id text NOT NULL,\n\
         \x20   collection_id text NOT NULL,\n\
         \x20   registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n\
         \x20   PRIMARY KEY (tenant_id, agent_id, conversation_id, collection_id)\n\
         );\n"
    );
    for table in [MESSAGES_TABLE, COLLECTIONS_TABLE] {
        let policy = RlsPolicy::new(table, "tenant_id")
            .setting_names(settings)
            .hardened(hardened)
            .policy_name(POLICY_NAME);
        sql.push_str(&policy.idempotent_sql());
    }
    // Messages are appended and cleared, never edited: no UPDATE grant.
    sql.push_str(&format!(
        "GRANT SELECT, INSERT, DELETE ON {MESSAGES_TABLE} TO {app};\n\
         GRANT SELECT, INSERT, DELETE ON {COLLECTIONS_TABLE} TO {app};\n"
    ));
    sql
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions to the agent.
    System,
    /// The person talking to the agent.
    User,
    /// The agent.
    Assistant,
    /// A tool the agent called.
    Tool,
}

impl Role {
    /// The role as stored: `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `system`, `user`, `assistant`, `tool`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message role; use one of `system`, `user`, `assistant`, `tool`")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" => Ok(Role::Tool),
            _ => Err(UnknownRole),
        }
    }
}

/// The id of a stored message; increases with every message of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// Who wrote it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// When it was stored (the database's clock).
    pub created_at: SystemTime,
}

/// The memory of one conversation: tenant, agent and conversation come from
/// the context it was built from. Cheap to build; holds two references.
pub struct ConversationMemory<'a, S: IsValidated> {
    pool: &'a TenantPool,
    ctx: &'a Ctx<S>,
}

impl<S: HasAgent + HasConversation> fmt::Debug for ConversationMemory<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationMemory")
            .field("tenant", &self.ctx.tenant_id().as_str())
            .field("agent", &self.ctx.agent_id().as_str())
            .field("conversation", &self.ctx.conversation_id().as_str())
            .finish()
    }
}

fn epoch_to_time(seconds: f64) -> SystemTime {
    if seconds >= 0.0 && seconds.is_finite() {
        UNIX_EPOCH + Duration::from_secs_f64(seconds)
    } else {
        UNIX_EPOCH
    }
}

impl<'a, S: HasAgent + HasConversation> ConversationMemory<'a, S> {
    /// The memory of the conversation `ctx` names.
    pub fn new(pool: &'a TenantPool, ctx: &'a Ctx<S>) -> Self {
        ConversationMemory { pool, ctx }
    }

    fn key(&self) -> (&str, &str, &str) {
        (
            self.ctx.tenant_id().as_str(),
            self.ctx.agent_id().as_str(),
            self.ctx.conversation_id().as_str(),
        )
    }

    /// Appends a message and returns its id.
    pub async fn add_message(&self, role: Role, content: &str) -> Result<MessageId, Error> {
        let mut tx = self.pool.begin(self.ctx).await?;
        let id = self.add_message_in(&mut tx, role, content).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Appends a message inside the caller's transaction and returns its
    /// id: the message commits with whatever else `tx` writes (an outbox
    /// event, say), or not at all. `tx` must be a transaction of this
    /// conversation's tenant; one of another tenant inserts nothing (the
    /// table's policy refuses the row and the database error is returned).
    ///
    /// ```no_run
    /// # use tenant_core::{Ctx, Validated, WithAgent, WithConversation};
    /// # use tenant_sqlx::memory::{ConversationMemory, Role};
    /// # use tenant_sqlx::TenantPool;
    /// # async fn demo(pool: TenantPool, ctx: Ctx<Validated<WithAgent, WithConversation>>) -> Result<(), tenant_sqlx::Error> {
    /// let mut tx = pool.begin(&ctx).await?;
    /// let id = ConversationMemory::new(&pool, &ctx)
    ///     .add_message_in(&mut tx, Role::User, "hello")
    ///     .await?;
    /// // … more writes in the same transaction …
    /// tx.commit().await?;
    /// # let _ = id; Ok(()) }
    /// ```
    pub async fn add_message_in(
        &self,
        tx: &mut TenantTx<'_>,
        role: Role,
        content: &str,
    ) -> Result<MessageId, Error> {
        let (tenant, agent, conversation) = self.key();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenant_memory_messages (tenant_id, agent_id, conversation_id, role, content) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(agent)
        .bind(conversation)
        .bind(role.as_str())
        .bind(content)
        .fetch_one(&mut *tx)
        .await?;
        Ok(MessageId(id))
    }

    /// The last `limit` messages of the conversation, oldest first.
    pub async fn history(&self, limit: u32) -> Result<Vec<Message>, Error> {
        let (tenant, agent, conversation) = self.key();
        let mut tx = self.pool.begin(self.ctx).await?;
        let rows: Vec<(i64, String, String, f64)> = sqlx::query_as(
            "SELECT id, role, content, extract(epoch FROM created_at)::float8 FROM ( \
                 SELECT id, role, content, created_at FROM tenant_memory_messages \
                 WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3 \
                 ORDER BY id DESC LIMIT $4 \
             ) last ORDER BY id",
        )
        .bind(tenant)
        .bind(agent)
        .bind(conversation)
        .bind(i64::from(limit))
        .fetch_all(&mut tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, role, content, at)| {
                let role = role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(Message {
                    id: MessageId(id),
                    role,
                    content,
                    created_at: epoch_to_time(at),
                })
            })
            .collect()
    }

    /// Records that `collection` was used in the conversation. Registering
    /// it again changes nothing.
    pub async fn register_collection(&self, collection: &CollectionId) -> Result<(), Error> {
        let (tenant, agent, conversation) = self.key();
        let mut tx = self.pool.begin(self.ctx).await?;
        sqlx::query(
            "INSERT INTO tenant_memory_collections (tenant_id, agent_id, conversation_id, collection_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(agent)
        .bind(conversation)
        .bind(collection.as_str())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The collections used in the conversation, in the order first used.
    pub async fn collections(&self) -> Result<Vec<CollectionId>, Error> {
        let (tenant, agent, conversation) = self.key();
        let mut tx = self.pool.begin(self.ctx).await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT collection_id FROM tenant_memory_collections \
             WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3 \
             ORDER BY registered_at, collection_id",
        )
        .bind(tenant)
        .bind(agent)
        .bind(conversation)
        .fetch_all(&mut tx)
        .await?;
        tx.commit().await?;
        // Stored ids were valid when written; one that no longer parses (a
        // row written around this API) is skipped rather than trusted.
        Ok(rows.iter().filter_map(|c| c.parse().ok()).collect())
    }

    /// Forgets the conversation: its messages and collections. Returns how
    /// many rows were removed.
    pub async fn clear(&self) -> Result<u64, Error> {
        let (tenant, agent, conversation) = self.key();
        let mut tx = self.pool.begin(self.ctx).await?;
        let mut removed = 0;
        for table in [MESSAGES_TABLE, COLLECTIONS_TABLE] {
            removed += sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3"
            ))
            .bind(tenant)
            .bind(agent)
            .bind(conversation)
            .execute(&mut tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}
