//! An agent-conversation service (seed 001 §10.3) on `tenant-core` and
//! `tenant-sqlx`.
//!
//! Every handler is `#[with_context(...)]`; every query runs in a
//! [`TenantTx`](tenant_sqlx::TenantTx) opened from the validated context, on
//! tables with Row-Level Security. Two tenants can use the same agent and
//! conversation ids and never see each other's messages.
//!
//! | route | context |
//! | --- | --- |
//! | `POST /api/agents/{agent_id}/messages` `{"content": "...", "role": "user"}` | tenant, agent (from the URL), conversation (`X-Conversation-ID`) |
//! | `GET /api/agents/{agent_id}/messages?limit=50` | same |
//! | `DELETE /api/agents/{agent_id}/messages` | same |
//! | `POST /api/agents/{agent_id}/collections` `{"collection_id": "..."}` | same |
//! | `GET /api/agents/{agent_id}/collections` | same |
//! | `GET /status` | public (`validate_tenant = false`) |
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use tenant_core::layer::ContextLayer;
use tenant_core::{
    with_context, CollectionId, ContextError, Ctx, Unvalidated, Validated, WithAgent,
    WithConversation,
};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::memory::{self, ConversationMemory, Role};
use tenant_sqlx::testing::{HarnessError, TestCluster, TestDatabase};
use tenant_sqlx::{AdminPool, Settings, TenantPool};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What a handler of an agent's conversation receives.
type ConversationCtx = Ctx<Validated<WithAgent, WithConversation>>;

/// The shared state of the handlers: the tenant pool, nothing else.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: Arc<TenantPool>,
}

/// A handler's error: a context error (400/401/403 with its code), a bad
/// body (400), or a database error (500, details logged, not sent).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's context was missing or invalid.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The request body was not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] tenant_sqlx::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Context(e) => e.into_response(),
            ApiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": "BAD_REQUEST", "message": message}})),
            )
                .into_response(),
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": {"code": "DATABASE_ERROR", "message": "the database failed; see the service log"}})),
                )
                    .into_response()
            }
        }
    }
}

/// The body of `POST /api/agents/{agent_id}/messages`.
#[derive(Debug, Deserialize)]
pub struct NewMessage {
    /// What was said.
    pub content: String,
    /// `user` (default), `assistant`, `system` or `tool`.
    #[serde(default)]
    pub role: Option<String>,
}

/// The body of `POST /api/agents/{agent_id}/collections`.
#[derive(Debug, Deserialize)]
pub struct NewCollection {
    /// The collection used in the conversation.
    pub collection_id: String,
}

/// The query of `GET /api/agents/{agent_id}/messages`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// How many of the last messages (default 50, at most 500).
    pub limit: Option<u32>,
}

fn conversation_json(ctx: &ConversationCtx) -> Value {
    json!({
        "tenant": ctx.tenant_id().as_str(),
        "agent": ctx.agent_id().as_str(),
        "conversation": ctx.conversation_id().as_str(),
    })
}

/// Stores a message in the conversation.
#[with_context(tenant, agent = agent_id, conversation)]
async fn post_message(
    State(app): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let role = match body.role.as_deref() {
        None => Role::User,
        Some(r) => r
            .parse()
            .map_err(|e: memory::UnknownRole| ApiError::BadRequest(e.to_string()))?,
    };
    let id = ConversationMemory::new(&app.pool, &ctx)
        .add_message(role, &body.content)
        .await?;
    tracing::info!(message_id = id.0, "message stored");
    let mut out = conversation_json(&ctx);
    out["id"] = json!(id.0);
    Ok((StatusCode::CREATED, Json(out)))
}

/// The conversation's last messages, oldest first.
#[with_context(tenant, agent = agent_id, conversation)]
async fn get_messages(
    State(app): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).min(500);
    let messages = ConversationMemory::new(&app.pool, &ctx)
        .history(limit)
        .await?;
    let mut out = conversation_json(&ctx);
    out["messages"] = messages
        .iter()
        .map(|m| json!({"id": m.id.0, "role": m.role.as_str(), "content": m.content}))
        .collect();
    Ok(Json(out))
}

/// Forgets the conversation.
#[with_context(tenant, agent = agent_id, conversation)]
async fn delete_messages(
    State(app): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
) -> Result<Json<Value>, ApiError> {
    let removed = ConversationMemory::new(&app.pool, &ctx).clear().await?;
    let mut out = conversation_json(&ctx);
    out["removed"] = json!(removed);
    Ok(Json(out))
}

/// Records a collection used in the conversation.
#[with_context(tenant, agent = agent_id, conversation)]
async fn post_collection(
    State(app): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    Json(body): Json<NewCollection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let collection: CollectionId = body
        .collection_id
        .parse()
        .map_err(ContextError::CollectionInvalid)?;
    ConversationMemory::new(&app.pool, &ctx)
        .register_collection(&collection)
        .await?;
    let mut out = conversation_json(&ctx);
    out["collection"] = json!(collection.as_str());
    Ok((StatusCode::CREATED, Json(out)))
}

/// The collections used in the conversation.
#[with_context(tenant, agent = agent_id, conversation)]
async fn get_collections(
    State(app): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
) -> Result<Json<Value>, ApiError> {
    let collections = ConversationMemory::new(&app.pool, &ctx)
        .collections()
        .await?;
    let mut out = conversation_json(&ctx);
    out["collections"] = collections.iter().map(|c| json!(c.as_str())).collect();
    Ok(Json(out))
}

/// A public endpoint: no tenant needed (seed 001 §10.2). It may echo the raw
/// tenant header, which is not validated and opens nothing.
#[with_context(tenant, validate_tenant = false)]
async fn status(ctx: Ctx<Unvalidated>) -> Result<Json<Value>, ContextError> {
    Ok(Json(
        json!({"status": "online", "tenant": ctx.raw_tenant()}),
    ))
}

/// The service's routes, with the layer that reads the context headers.
pub fn router(pool: Arc<TenantPool>) -> Router {
    Router::new()
        .route(
            "/api/agents/{agent_id}/messages",
            get(get_messages).post(post_message).delete(delete_messages),
        )
        .route(
            "/api/agents/{agent_id}/collections",
            get(get_collections).post(post_collection),
        )
        .route("/status", get(status))
        .layer(ContextLayer::new())
        .with_state(AppState { pool })
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The throwaway PostgreSQL could not be started.
    #[error("could not start the throwaway PostgreSQL: {0}")]
    Harness(#[from] HarnessError),
    /// A URL in the environment is not a PostgreSQL URL.
    #[error("`{var}` is not a usable PostgreSQL URL: {source}")]
    BadUrl {
        /// The environment variable.
        var: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// The migrations or the pool failed (including a failed audit).
    #[error(transparent)]
    Database(#[from] tenant_sqlx::Error),
    /// Hardened mode needs `GUARD_SECRET`: at least 32 bytes, in hex.
    #[error(
        "hardened mode needs GUARD_SECRET, the guard's secret as hex (at least 32 bytes); \
         or set HARDENED=0"
    )]
    BadGuardSecret,
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Where the data lives: a throwaway cluster (removed when the service
/// stops), or the database named in the environment.
#[derive(Debug)]
enum Database {
    Throwaway {
        // Field order matters: the database handle goes before the cluster.
        db: TestDatabase,
        cluster: TestCluster,
    },
    External {
        app_url: String,
        owner_url: Option<String>,
    },
}

impl Database {
    async fn from_env() -> Result<Database, StartError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        match var("DATABASE_URL") {
            Some(app_url) => Ok(Database::External {
                app_url,
                owner_url: var("DATABASE_OWNER_URL"),
            }),
            None => {
                let cluster = TestCluster::start().await?;
                let db = cluster.create_database().await?;
                Ok(Database::Throwaway { db, cluster })
            }
        }
    }

    fn app_url(&self) -> &str {
        match self {
            Database::Throwaway { db, .. } => db.app_url(),
            Database::External { app_url, .. } => app_url,
        }
    }

    fn owner_url(&self) -> Option<&str> {
        match self {
            Database::Throwaway { db, .. } => Some(db.owner_url()),
            Database::External { owner_url, .. } => owner_url.as_deref(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Database::Throwaway { cluster, .. } => format!(
                "a throwaway PostgreSQL in {} (removed on exit)",
                cluster
                    .dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            Database::External { .. } => "the database in DATABASE_URL".to_owned(),
        }
    }
}

/// Runs the migrations as the tables' owner, through the logged admin path,
/// granting the application role (the user of `app_url`) what it needs,
/// with hardened policies when `hardened`.
async fn migrate(owner_url: &str, app_url: &str, hardened: bool) -> Result<(), StartError> {
    let app_options: PgConnectOptions = app_url.parse().map_err(|source| StartError::BadUrl {
        var: "DATABASE_URL",
        source,
    })?;
    let admin = AdminPool::connect(owner_url).await?;
    let mut conn = admin.acquire("run the agent-service migrations").await?;
    let sql = memory::migration_for(&Settings::default(), app_options.get_username(), hardened);
    sqlx::raw_sql(&sql)
        .execute(&mut conn)
        .await
        .map_err(tenant_sqlx::Error::from)?;
    drop(conn);
    admin.close().await;
    Ok(())
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    addr: SocketAddr,
    database: Database,
    pool: Arc<TenantPool>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Service {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where its data lives, in words.
    pub fn database(&self) -> String {
        self.database.describe()
    }

    /// Stops serving (in-flight requests finish), closes the pool and
    /// removes the throwaway cluster, if any.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        let served = self
            .server
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.pool.close().await;
        drop(self.database);
        served
    }

    /// Serves until Ctrl-C, then [`stop`](Self::stop)s.
    pub async fn run_until_ctrl_c(self) -> std::io::Result<()> {
        let _ = tokio::signal::ctrl_c().await;
        self.stop().await
    }
}

/// Whether hardened mode is on: unless `HARDENED=0`. Then the tenant
/// setting cannot be switched by SQL the service runs (see
/// `tenant_sqlx::guard`).
fn hardened_from_env() -> bool {
    std::env::var("HARDENED").map_or(true, |v| v != "0")
}

/// The guard secret: `GUARD_SECRET` (hex, at least 32 bytes), or for a
/// throwaway database one made up now (it dies with the database).
fn guard_secret(database: &Database) -> Result<Vec<u8>, StartError> {
    if let Ok(hex) = std::env::var("GUARD_SECRET") {
        return decode_hex(hex.trim()).ok_or(StartError::BadGuardSecret);
    }
    match database {
        Database::Throwaway { .. } => {
            use std::hash::{BuildHasher, Hasher};
            // Not a key generator worth the name, but a throwaway database's
            // secret only has to be unknown to the service's own SQL.
            let mut secret = Vec::with_capacity(32);
            while secret.len() < 32 {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(secret.len());
                secret.extend_from_slice(&h.finish().to_le_bytes());
            }
            Ok(secret)
        }
        Database::External { .. } => Err(StartError::BadGuardSecret),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Starts the service on `bind` (for example `127.0.0.1:3000`, or port 0 for
/// any free port): a throwaway PostgreSQL when `DATABASE_URL` is unset,
/// migrations as the owner role (`DATABASE_OWNER_URL` with an external
/// database; without it the database must be migrated already), then a
/// [`TenantPool`] as the application role, which refuses to start if the
/// audit finds a problem.
///
/// Hardened mode is on unless `HARDENED=0`: on a throwaway database the
/// guard is installed with a secret made up at start; on an external one
/// it must be installed already (`tenant_sqlx::guard::Guard`) and
/// `GUARD_SECRET` (hex) names the secret.
pub async fn start(bind: &str) -> Result<Service, StartError> {
    let database = Database::from_env().await?;
    let hardened = hardened_from_env();
    let secret = if hardened {
        let secret = guard_secret(&database)?;
        if let Database::Throwaway { db, .. } = &database {
            db.install_guard(&secret).await?;
        }
        Some(GuardSecret::new(&secret)?)
    } else {
        None
    };
    if let Some(owner_url) = database.owner_url() {
        migrate(owner_url, database.app_url(), hardened).await?;
    }
    let mut builder = TenantPool::builder();
    if let Some(secret) = secret {
        builder = builder.hardened(secret);
    }
    let pool = Arc::new(builder.connect(database.app_url()).await?);
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: bind.to_owned(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: bind.to_owned(),
        source,
    })?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = router(Arc::clone(&pool));
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Service {
        addr,
        database,
        pool,
        shutdown,
        server,
    })
}
