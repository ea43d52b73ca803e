//! An agent-conversation service on `tenant-core` and `tenant-sqlx`: each
//! tenant's AI agents keep conversations (messages, the document collections
//! they consult) behind an HTTP API, and no tenant can reach another's.
//!
//! Every handler is `#[with_context(...)]`; every query runs in a
//! [`TenantTx`](tenant_sqlx::TenantTx) opened from the validated context, on
//! tables with Row-Level Security. Two tenants can use the same agent and
//! conversation ids and never see each other's messages.
//!
//! | route | context |
//! | --- | --- |
//! | `POST /api/agents/{agent_id}/messages` `{"content": "...", "role": "user"}` | tenant, agent (from the URL), conversation (`X-Conversation-ID`) |
//! | `GET /api/agents/{agent_id}/messages?limit=50&before=123` | same |
//! | `DELETE /api/agents/{agent_id}/messages` | same |
//! | `POST /api/agents/{agent_id}/collections` `{"collection_id": "..."}` | same |
//! | `GET /api/agents/{agent_id}/collections` | same |
//! | `GET /api/agents/{agent_id}/summary` | same |
//! | `GET /status` | public (`validate_tenant = false`) |
//!
//! # Events
//!
//! Storing a message also writes a `message.created` event to the outbox,
//! in the same transaction ([`tenant_worker::publish`]): the event
//! exists exactly when the message does. A relay and a worker, tasks of the
//! service (on a throwaway Redis unless `REDIS_URL` is set), keep a
//! per-conversation summary (message count, last activity) in
//! `agent_conversation_summaries`, under RLS like every table; the worker
//! records each event in the summary's own transaction
//! ([`Job::begin`](tenant_worker::Job::begin)), so a redelivered event
//! counts once. `GET …/summary` shows it; until the worker has seen a
//! message of the conversation it is `404 SUMMARY_NOT_FOUND`.
//!
//! # Who the tenant is
//!
//! By default the tenant is the `tenant` claim of a bearer JWT
//! ([`Auth::Bearer`]: HS256, `iss` [`ISSUER`], `aud` [`AUDIENCE`]; an
//! `agent` claim, if any, is the agent). No token is `401 TOKEN_MISSING`,
//! a bad one `401 TOKEN_…`, both with `WWW-Authenticate`; an `X-Tenant-ID`
//! header that differs from the token is `403 TENANT_MISMATCH`. Behind a
//! gateway that authenticates clients, [`Auth::TrustedHeader`]
//! (`TRUST_TENANT_HEADER=1`) takes `X-Tenant-ID` as sent.
//!
//! # Hostile clients
//!
//! Every refusal is the JSON envelope `{"error":{"code":…,"message":…}}`
//! with a stable code; the bounds are [`Limits`] (defaults in parentheses).
//!
//! * Bad input is a 4xx before any I/O: empty or blank `content` is
//!   `400 CONTENT_EMPTY`; a NUL character in a message's `content`
//!   (PostgreSQL `text` cannot store it) is `400 CONTENT_INVALID`; a body that is not the expected JSON is
//!   `400`/`422 BODY_INVALID` or `415 BODY_NOT_JSON`; a bad query string is
//!   `400 QUERY_INVALID`, a path segment that is not UTF-8
//!   `400 PATH_INVALID`; an unknown path `404 NOT_FOUND`, a method the path
//!   does not serve `405 METHOD_NOT_ALLOWED`.
//! * Sizes: a body over [`Limits::max_body_bytes`] (64 KiB) is
//!   `413 BODY_TOO_LARGE`, content over [`Limits::max_content_bytes`]
//!   (32 KiB) `413 CONTENT_TOO_LARGE`.
//! * Pages: `GET …/messages` returns the newest `limit` messages
//!   ([`Limits::default_page`], 50; at most [`Limits::max_page`], 100, else
//!   `400 LIMIT_INVALID`) older than `before` (a message id; default: the
//!   newest), oldest first, in a body of at most
//!   [`Limits::max_response_bytes`] (1 MiB). When older messages remain,
//!   `next_before` is the `before` of the next page; on the last page it is
//!   `null`. A message stored before the content bound, and larger than
//!   it, is listed with `"content": null, "content_too_large": true`.
//! * Time: a client that has not sent its request head within
//!   [`Limits::header_read_timeout`] (10 s) is disconnected, as is an idle
//!   keep-alive connection; a request whose body has not arrived within
//!   [`Limits::request_timeout`] (30 s) is `408 REQUEST_TIMEOUT`, and one
//!   whose handler has not answered by then is cancelled,
//!   `503 RESPONSE_TIMEOUT`; a client that stops reading its response for
//!   [`Limits::send_timeout`] (10 s) is disconnected.
//! * Logs: every refused request (a `4xx`, or `503 RESPONSE_TIMEOUT`) is
//!   logged once, at `INFO`, as `request refused` with its `code`,
//!   `status`, `method`, `path` and, when the request got as far as
//!   resolving one, its `tenant`; a request hyper's parser refuses (a head
//!   over its limit, a malformed one) is logged the same way, with its
//!   `peer` (`REQUEST_HEAD_TOO_LARGE`, `REQUEST_HEAD_INVALID`). A database
//!   error is logged at `ERROR` inside the handler's span, with its `tenant_id`, `agent_id` and
//!   `conversation_id`, like every other line a handler writes; the client
//!   gets `500 DATABASE_ERROR` and no detail.
#![deny(missing_docs)]

mod auth;
mod error;
mod events;
mod limits;
mod refusals;
mod serve;
mod service;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tenant_core::edge::Resolver;
use tenant_core::layer::ContextLayer;
use tenant_core::{
    with_context, CollectionId, ContextError, Ctx, Unvalidated, Validated, WithAgent,
    WithConversation,
};
use tenant_sqlx::memory::{self, ConversationMemory, Role};
use tenant_sqlx::TenantPool;

pub use auth::{Auth, AUDIENCE, ISSUER, TOKEN_LIFETIME};
pub use error::{ApiError, JsonBody, PathParam, QueryParams};
pub use events::{MessageCreated, MESSAGE_CREATED, SUMMARY_GROUP, SUMMARY_TABLE};
pub use limits::Limits;
pub use service::{start, start_with, Config, DatabaseConfig, Service, StartError};

/// What a handler of an agent's conversation receives.
type ConversationCtx = Ctx<Validated<WithAgent, WithConversation>>;

/// The shared state of the handlers: the tenant pool and the limits.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: Arc<TenantPool>,
    limits: Limits,
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
    /// How many messages, at most (default [`Limits::default_page`], at most
    /// [`Limits::max_page`]).
    pub limit: Option<u32>,
    /// Only messages older than this message id: the `next_before` of the
    /// previous page.
    pub before: Option<i64>,
}

fn conversation_json(ctx: &ConversationCtx) -> Value {
    json!({
        "tenant": ctx.tenant_id().as_str(),
        "agent": ctx.agent_id().as_str(),
        "conversation": ctx.conversation_id().as_str(),
    })
}

/// Refuses content the database cannot store or the service will not,
/// before any I/O.
fn check_content(content: &str, limits: &Limits) -> Result<(), ApiError> {
    if content.trim().is_empty() {
        return Err(ApiError::refused(
            StatusCode::BAD_REQUEST,
            "CONTENT_EMPTY",
            "the content is empty: send the message's text in `content`",
        ));
    }
    if content.len() > limits.max_content_bytes {
        return Err(ApiError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "CONTENT_TOO_LARGE",
            format!(
                "the content is {} bytes long; at most {} bytes are allowed",
                content.len(),
                limits.max_content_bytes
            ),
        ));
    }
    if let Some(index) = content.bytes().position(|b| b == 0) {
        return Err(ApiError::refused(
            StatusCode::BAD_REQUEST,
            "CONTENT_INVALID",
            format!(
                "the content contains a NUL character (U+0000) at byte {index}, \
                 which PostgreSQL text cannot store; remove it or encode the content"
            ),
        ));
    }
    Ok(())
}

/// Stores a message in the conversation and, in the same transaction,
/// publishes its `message.created` event to the outbox.
#[with_context(tenant, agent = agent_id, conversation)]
async fn post_message(
    State(app): State<AppState>,
    PathParam(agent_id): PathParam<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    JsonBody(body): JsonBody<NewMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_content(&body.content, &app.limits)?;
    let role = match body.role.as_deref() {
        None => Role::User,
        Some(r) => r.parse().map_err(|e: memory::UnknownRole| {
            ApiError::refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string())
        })?,
    };
    let mut tx = app.pool.begin(&ctx).await?;
    let id = ConversationMemory::new(&app.pool, &ctx)
        .add_message_in(&mut tx, role, &body.content)
        .await?;
    tenant_worker::publish(
        &mut tx,
        MESSAGE_CREATED,
        &MessageCreated { message_id: id.0 },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(message_id = id.0, "message stored");
    let mut out = conversation_json(&ctx);
    out["id"] = json!(id.0);
    Ok((StatusCode::CREATED, Json(out)))
}

/// One page of the conversation: the newest `limit` messages older than
/// `before`, oldest first, cut to fit `max_response_bytes`; `next_before`
/// names the next (older) page, or is `null` on the last one.
#[with_context(tenant, agent = agent_id, conversation)]
async fn get_messages(
    State(app): State<AppState>,
    PathParam(agent_id): PathParam<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limits = &app.limits;
    let limit = q.limit.unwrap_or(limits.default_page);
    if limit == 0 || limit > limits.max_page {
        return Err(ApiError::refused(
            StatusCode::BAD_REQUEST,
            "LIMIT_INVALID",
            format!(
                "`limit` must be between 1 and {}; page through a longer conversation \
                 with `before`",
                limits.max_page
            ),
        ));
    }
    // One more than the page, to know whether an older page exists. A row
    // over the content bound (stored before it existed) is never read
    // into memory: at most `limit + 1` rows of `max_content_bytes`.
    let mut tx = app.pool.begin(&ctx).await?;
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT id, role, CASE WHEN octet_length(content) <= $5 THEN content END \
         FROM tenant_memory_messages \
         WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3 AND id < $4 \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(ctx.tenant_id().as_str())
    .bind(ctx.agent_id().as_str())
    .bind(ctx.conversation_id().as_str())
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(i64::try_from(limits.max_content_bytes).unwrap_or(i64::MAX))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut tx)
    .await?;
    tx.commit().await?;

    let mut out = conversation_json(&ctx);
    out["messages"] = json!([]);
    out["next_before"] = json!(i64::MAX);
    // The body without messages, with the longest `next_before`; then each
    // message adds its own length and a comma.
    let mut size = out.to_string().len();
    let fetched = rows.len();
    let mut page = Vec::new();
    for (id, role, content) in rows {
        if page.len() == limit as usize {
            break;
        }
        let message = match content {
            Some(content) => json!({"id": id, "role": role, "content": content}),
            None => json!({"id": id, "role": role, "content": null, "content_too_large": true}),
        };
        let added = message.to_string().len() + usize::from(!page.is_empty());
        if size + added > limits.max_response_bytes && !page.is_empty() {
            break;
        }
        size += added;
        page.push((id, message));
    }
    out["next_before"] = match page.last() {
        Some((oldest, _)) if page.len() < fetched => json!(oldest),
        _ => Value::Null,
    };
    out["messages"] = page.into_iter().rev().map(|(_, m)| m).collect();
    Ok(Json(out))
}

/// The conversation's summary, as the worker left it: how many messages,
/// the newest message's id and when it was stored.
#[with_context(tenant, agent = agent_id, conversation)]
async fn get_summary(
    State(app): State<AppState>,
    PathParam(agent_id): PathParam<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = app.pool.begin(&ctx).await?;
    let row: Option<(i64, i64, String)> = sqlx::query_as(&format!(
        "SELECT message_count, last_message_id, \
             to_char(last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
         FROM {SUMMARY_TABLE} \
         WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3"
    ))
    .bind(ctx.tenant_id().as_str())
    .bind(ctx.agent_id().as_str())
    .bind(ctx.conversation_id().as_str())
    .fetch_optional(&mut tx)
    .await?;
    tx.commit().await?;
    let Some((count, last_id, last_activity)) = row else {
        return Err(ApiError::refused(
            StatusCode::NOT_FOUND,
            "SUMMARY_NOT_FOUND",
            "no summary for this conversation yet: the worker writes it shortly after \
             the conversation's first message",
        ));
    };
    let mut out = conversation_json(&ctx);
    out["message_count"] = json!(count);
    out["last_message_id"] = json!(last_id);
    out["last_activity"] = json!(last_activity);
    Ok(Json(out))
}

/// Forgets the conversation.
#[with_context(tenant, agent = agent_id, conversation)]
async fn delete_messages(
    State(app): State<AppState>,
    PathParam(agent_id): PathParam<String>,
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
    PathParam(agent_id): PathParam<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
    JsonBody(body): JsonBody<NewCollection>,
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
    PathParam(agent_id): PathParam<String>,
    ctx: Ctx<Validated<WithAgent, WithConversation>>,
) -> Result<Json<Value>, ApiError> {
    let collections = ConversationMemory::new(&app.pool, &ctx)
        .collections()
        .await?;
    let mut out = conversation_json(&ctx);
    out["collections"] = collections.iter().map(|c| json!(c.as_str())).collect();
    Ok(Json(out))
}

/// A public status endpoint (for load balancers and uptime checks): no
/// tenant and no token needed. It may echo the raw tenant header, which is
/// not validated and opens nothing.
#[with_context(tenant, validate_tenant = false)]
async fn status(ctx: Ctx<Unvalidated>) -> Result<Json<Value>, ContextError> {
    Ok(Json(
        json!({"status": "online", "tenant": ctx.raw_tenant()}),
    ))
}

/// The service's routes: the edge (request timeout, body limit) around the
/// layer that resolves the context (`resolver`: bearer token or trusted
/// header, see [`Auth::resolver`]), around the handlers. `/status` is
/// public: its layer only reads the headers.
pub fn router(pool: Arc<TenantPool>, limits: Limits, resolver: Resolver) -> Router {
    let api = Router::new()
        .route(
            "/api/agents/{agent_id}/messages",
            get(get_messages).post(post_message).delete(delete_messages),
        )
        .route(
            "/api/agents/{agent_id}/collections",
            get(get_collections).post(post_collection),
        )
        .route("/api/agents/{agent_id}/summary", get(get_summary))
        // Inside the context layer, which resolves the tenant it counts.
        .layer(limits.rate_limit())
        // Between the two: sees the rate limit's refusals and the tenant.
        .layer(middleware::from_fn(refusals::tag))
        .layer(ContextLayer::new().resolver(resolver));
    let public = Router::new()
        .route("/status", get(status))
        .layer(ContextLayer::new());
    api.merge(public)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(limits, limits::edge))
        // Outside everything that refuses, so each refusal is logged once.
        .layer(middleware::from_fn(refusals::log))
        .with_state(AppState { pool, limits })
}
