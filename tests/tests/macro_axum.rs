//! `#[with_context]` handlers behind a real axum `Router` and the tower
//! `ContextLayer`, driven with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use tenant_core::layer::ContextLayer;
use tenant_core::{
    current, with_context, ContextError, Ctx, NoAgent, NoCollection, Unvalidated, Validated,
    WithAgent, WithConversation,
};
use tower::ServiceExt;

#[with_context(tenant)]
async fn whoami(ctx: Ctx) -> Result<String, ContextError> {
    Ok(format!("tenant={}", ctx.tenant_id()))
}

#[with_context(tenant, agent, conversation)]
async fn chat(
    ctx: Ctx<Validated<WithAgent, WithConversation, NoCollection>>,
) -> Result<String, ContextError> {
    Ok(format!(
        "{}/{}/{}",
        ctx.tenant_id(),
        ctx.agent_id(),
        ctx.conversation_id()
    ))
}

#[with_context(tenant, agent = agent_id)]
async fn query_agent(
    Path(agent_id): Path<String>,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<String, ContextError> {
    Ok(format!("path={agent_id} ctx={}", ctx.agent_id()))
}

/// A helper that requires an agent, called from a handler that does not.
#[with_context(tenant, agent)]
async fn agent_label(
    ctx: Ctx<Validated<WithAgent, tenant_core::NoConversation>>,
) -> Result<String, ContextError> {
    let outer = current()?;
    Ok(format!(
        "{}:{} (current {outer})",
        ctx.tenant_id(),
        ctx.agent_id()
    ))
}

#[with_context(tenant)]
async fn nested(ctx: Ctx<Validated<NoAgent>>) -> Result<String, ContextError> {
    let inner = agent_label().await?;
    // The handler's own context is in scope again after the helper returns.
    let after = current()?;
    Ok(format!(
        "outer={} inner=[{inner}] after={after}",
        ctx.tenant_id()
    ))
}

#[with_context(validate_tenant = false)]
async fn landing(ctx: Ctx<Unvalidated>) -> String {
    format!("raw={:?}", ctx.raw_tenant())
}

fn app(layer: ContextLayer) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/chat", get(chat))
        .route("/agents/{agent_id}", get(query_agent))
        .route("/nested", get(nested))
        .route("/", get(landing))
        .layer(layer)
}

async fn call(app: Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn error_code(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    json["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

#[tokio::test]
async fn headers_give_a_validated_context() {
    let (status, body) = call(
        app(ContextLayer::new()),
        "/whoami",
        &[("x-tenant-id", "acme")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "tenant=acme");

    let headers = [
        ("x-tenant-id", "acme"),
        ("x-agent-id", "agent-7"),
        ("x-conversation-id", "conv-1"),
    ];
    let (status, body) = call(app(ContextLayer::new()), "/chat", &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "acme/agent-7/conv-1");
}

#[tokio::test]
async fn missing_tenant_is_400_tenant_required() {
    let (status, body) = call(app(ContextLayer::new()), "/whoami", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "TENANT_REQUIRED");
}

#[tokio::test]
async fn default_tenant_is_tenant_invalid() {
    let (status, body) = call(
        app(ContextLayer::new()),
        "/whoami",
        &[("x-tenant-id", "default")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "TENANT_INVALID");
}

#[tokio::test]
async fn missing_required_agent_is_agent_required() {
    let headers = [("x-tenant-id", "acme"), ("x-conversation-id", "conv-1")];
    let (status, body) = call(app(ContextLayer::new()), "/chat", &headers).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "AGENT_REQUIRED");

    let headers = [("x-tenant-id", "acme"), ("x-agent-id", "agent-7")];
    let (status, body) = call(app(ContextLayer::new()), "/chat", &headers).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "CONVERSATION_REQUIRED");
}

#[tokio::test]
async fn agent_bound_to_the_path_is_taken_from_the_url_and_validated() {
    let (status, body) = call(
        app(ContextLayer::new()),
        "/agents/agent-9",
        &[("x-tenant-id", "acme")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "path=agent-9 ctx=agent-9");

    // The URL wins over a header: the binding names the source.
    let headers = [("x-tenant-id", "acme"), ("x-agent-id", "agent-1")];
    let (status, body) = call(app(ContextLayer::new()), "/agents/agent-9", &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "path=agent-9 ctx=agent-9");

    // Still validated: a reserved id in the URL is refused.
    let (status, body) = call(
        app(ContextLayer::new()),
        "/agents/default",
        &[("x-tenant-id", "acme")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "AGENT_INVALID");
}

#[tokio::test]
async fn nested_call_reuses_the_outer_context_and_fills_what_it_lacks() {
    let headers = [("x-tenant-id", "acme"), ("x-agent-id", "agent-7")];
    let (status, body) = call(app(ContextLayer::new()), "/nested", &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "outer=acme inner=[acme:agent-7 (current [t:acme a:agent-7])] after=[t:acme a:agent-7]"
    );

    // The outer handler needs no agent, the helper does: its error is the
    // handler's error.
    let (status, body) = call(
        app(ContextLayer::new()),
        "/nested",
        &[("x-tenant-id", "acme")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "AGENT_REQUIRED");
}

#[tokio::test]
async fn the_application_validator_runs() {
    let layer = ContextLayer::new().with_validator(|ctx: Ctx<Validated>| async move {
        if ctx.tenant_id().as_str() == "acme" {
            Ok(())
        } else {
            Err(ContextError::forbidden("unknown tenant"))
        }
    });
    let (status, _) = call(app(layer.clone()), "/whoami", &[("x-tenant-id", "acme")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(app(layer), "/whoami", &[("x-tenant-id", "globex")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "TENANT_FORBIDDEN");
}

#[tokio::test]
async fn public_endpoint_gets_the_raw_context_and_never_fails() {
    let (status, body) = call(app(ContextLayer::new()), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "raw=None");
    let (status, body) = call(app(ContextLayer::new()), "/", &[("x-tenant-id", "default")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "raw=Some(\"default\")");
}
