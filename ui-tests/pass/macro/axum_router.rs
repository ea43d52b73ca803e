//! Annotated functions are axum handlers: the router never passes the
//! context. One takes the agent from the URL (`agent = agent_id`), one has
//! extractors on both sides of the context, one is public.
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx, Unvalidated, Validated, WithAgent};

#[derive(Clone)]
struct AppState {
    model: &'static str,
}

#[derive(Deserialize)]
struct Query {
    text: String,
}

#[derive(Serialize)]
struct Answer {
    tenant: String,
    agent: String,
    text: String,
}

#[with_context(tenant, agent = agent_id)]
async fn query_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent>>,
    Json(q): Json<Query>,
) -> Result<Json<Answer>, ContextError> {
    Ok(Json(Answer {
        tenant: ctx.tenant_id().to_string(),
        agent: agent_id,
        text: format!("{} says {}", state.model, q.text),
    }))
}

#[with_context(tenant)]
async fn whoami(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

// `impl Trait` in the `Ok` type: no fake return edge, the type is inferred.
#[with_context(tenant)]
async fn status(ctx: Ctx) -> Result<impl axum::response::IntoResponse, ContextError> {
    Ok((
        axum::http::StatusCode::ACCEPTED,
        ctx.tenant_id().to_string(),
    ))
}

#[with_context(validate_tenant = false)]
async fn landing(ctx: Ctx<Unvalidated>) -> &'static str {
    if ctx.raw_tenant().is_some() {
        "welcome back"
    } else {
        "welcome"
    }
}

fn app() -> Router {
    Router::new()
        .route("/agents/{agent_id}/query", post(query_agent))
        .route("/whoami", get(whoami))
        .route("/status", get(status))
        .route("/", get(landing))
        .with_state(AppState { model: "m1" })
        .layer(ContextLayer::new())
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let _ = app();
    // The futures are `Send`, as `tokio::spawn` and axum require.
    assert_send(whoami());
    assert_send(query_agent(
        State(AppState { model: "m1" }),
        Path("agent-7".to_owned()),
        Json(Query {
            text: String::new(),
        }),
    ));
}
