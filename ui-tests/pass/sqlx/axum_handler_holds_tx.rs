//! An axum handler holds a `TenantTx` across several `.await`s and is still
//! a handler for `axum::routing::get`: its future is `Send`.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};
use tenant_sqlx::TenantPool;

enum ApiError {
    Context(ContextError),
    Database(tenant_sqlx::Error),
}

impl From<ContextError> for ApiError {
    fn from(e: ContextError) -> Self {
        ApiError::Context(e)
    }
}

impl From<tenant_sqlx::Error> for ApiError {
    fn from(e: tenant_sqlx::Error) -> Self {
        ApiError::Database(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Database(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Context(e) => e.into_response(),
            ApiError::Database(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.code()).into_response(),
        }
    }
}

#[with_context(tenant, agent = agent_id)]
async fn notes(
    State(pool): State<TenantPool>,
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<Json<Vec<String>>, ApiError> {
    let mut tx = pool.begin(&ctx).await?;
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM notes WHERE agent_id = $1")
        .bind(ctx.agent_id().as_str())
        .fetch_all(&mut tx)
        .await?;
    tokio::task::yield_now().await;
    sqlx::query("UPDATE notes SET read_at = now() WHERE agent_id = $1")
        .bind(agent_id)
        .execute(&mut tx)
        .await?;
    let mut sp = tx.savepoint().await?;
    sqlx::query("DELETE FROM drafts").execute(&mut sp).await?;
    sp.commit().await?;
    tx.commit().await?;
    Ok(Json(titles))
}

#[with_context(tenant)]
async fn count(State(pool): State<TenantPool>, ctx: Ctx) -> Result<String, ApiError> {
    let mut tx = pool.begin(&ctx).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(n.to_string())
}

fn app(pool: TenantPool) -> Router {
    Router::new()
        .route("/agents/{agent_id}/notes", get(notes))
        .route("/notes/count", get(count))
        .with_state(pool)
        .layer(ContextLayer::new().require_tenant())
}

fn assert_send<T: Send>(_: &T) {}

#[allow(dead_code)]
fn check(pool: TenantPool) {
    assert_send(&notes(State(pool.clone()), Path("agent-7".to_owned())));
    assert_send(&count(State(pool.clone())));
    let _ = app(pool);
}

fn main() {}
