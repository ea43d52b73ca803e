//! The context follows outgoing calls: two real HTTP servers on
//! 127.0.0.1. Service A's `#[with_context(tenant, agent)]` handler calls
//! service B through a hyper client wrapped in `PropagateContextLayer`;
//! B sees A's tenant and agent, from the context headers (B behind the
//! gateway, trusting them) or from A's forwarded bearer token (B verifying
//! it, the headers only checked against it).

mod jwt;

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tenant_core::client::{ClientError, PropagateContext, PropagateContextLayer};
use tenant_core::edge::Resolver;
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};
use tower::{Layer, ServiceExt};

type HttpClient = PropagateContext<Client<HttpConnector, Empty<Bytes>>>;

#[derive(Clone)]
struct A {
    client: HttpClient,
    b: SocketAddr,
}

/// What B answers: who it runs for, and whether a token came along.
#[with_context(tenant, agent)]
async fn b_whoami(ctx: Ctx<Validated<WithAgent>>) -> Result<Json<Value>, ContextError> {
    Ok(Json(json!({
        "tenant": ctx.tenant_id().as_str(),
        "agent": ctx.agent_id().as_str(),
        "bearer": tenant_core::incoming_bearer().is_some(),
    })))
}

/// A's handler: calls B, and returns what B said.
#[with_context(tenant, agent)]
async fn a_calls_b(
    State(a): State<A>,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<Json<Value>, Failure> {
    let req = Request::builder()
        .uri(format!("http://{}/whoami", a.b))
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let res = a.client.clone().oneshot(req).await?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let b: Value = serde_json::from_slice(&body.to_bytes()).map_err(|e| Failure(e.to_string()))?;
    Ok(Json(json!({
        "a": {"tenant": ctx.tenant_id().as_str(), "agent": ctx.agent_id().as_str()},
        "b_status": status,
        "b": b,
    })))
}

/// A's errors, as a 502 with the reason (the test reads it).
#[derive(Debug)]
struct Failure(String);

impl From<ContextError> for Failure {
    fn from(e: ContextError) -> Self {
        Failure(e.code().to_owned())
    }
}

impl<E: std::fmt::Display> From<ClientError<E>> for Failure {
    fn from(e: ClientError<E>) -> Self {
        Failure(e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (StatusCode::BAD_GATEWAY, self.0).into_response()
    }
}

async fn serve(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, task)
}

/// Service A (bearer tokens) calling B (`b_resolver`) with `layer`.
async fn two_services(
    b_resolver: Resolver,
    layer: PropagateContextLayer,
) -> (SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    let b_app = Router::new()
        .route("/whoami", get(b_whoami))
        .layer(ContextLayer::new().resolver(b_resolver));
    let (b, b_task) = serve(b_app).await;
    let client = layer.layer(Client::builder(TokioExecutor::new()).build_http());
    let a_app = Router::new()
        .route("/call-b", get(a_calls_b))
        .layer(ContextLayer::new().resolver(Resolver::new().bearer(jwt::bearer())))
        .with_state(A { client, b });
    let (a, a_task) = serve(a_app).await;
    (a, vec![a_task, b_task])
}

async fn call_a(a: SocketAddr, token: &str) -> (u16, Value) {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::builder()
        .uri(format!("http://{a}/call-b"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-agent-id", "planner")
        .body(Body::empty())
        .unwrap();
    let res = client.request(req).await.expect("A answers");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_sees_as_tenant_and_agent_from_the_context_headers() {
    let (a, tasks) = two_services(
        Resolver::new().trusted_header(),
        PropagateContextLayer::new(),
    )
    .await;
    for tenant in ["acme", "globex"] {
        let (status, body) = call_a(a, &jwt::token(tenant)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["b_status"], 200, "{body}");
        assert_eq!(body["b"]["tenant"], tenant, "{body}");
        assert_eq!(body["b"]["agent"], "planner", "{body}");
        // Without `forward_bearer`, the token stays with A.
        assert_eq!(body["b"]["bearer"], false, "{body}");
    }
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_verifies_as_forwarded_bearer_token() {
    let (a, tasks) = two_services(
        Resolver::new().bearer(jwt::bearer()),
        PropagateContextLayer::new().forward_bearer(),
    )
    .await;
    let (status, body) = call_a(a, &jwt::token("globex")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["b_status"], 200, "{body}");
    assert_eq!(body["b"]["tenant"], "globex", "{body}");
    assert_eq!(body["b"]["agent"], "planner", "{body}");
    assert_eq!(body["b"]["bearer"], true, "{body}");
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_forwarding_a_bearer_only_b_refuses_the_call() {
    // B trusts only tokens: the context headers alone are 401, not served.
    let (a, tasks) = two_services(
        Resolver::new().bearer(jwt::bearer()),
        PropagateContextLayer::new(),
    )
    .await;
    let (status, body) = call_a(a, &jwt::token("acme")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["b_status"], 401, "{body}");
    assert_eq!(body["b"]["error"]["code"], "TOKEN_MISSING", "{body}");
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test]
async fn a_call_outside_any_context_is_not_sent() {
    let client = PropagateContextLayer::new()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    // Port 9 (discard) on a closed port: had it been sent, the error would be a connect error.
    let req = Request::builder()
        .uri("http://127.0.0.1:9/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    match client.oneshot(req).await {
        Err(ClientError::NoContext(e)) => assert_eq!(e, ContextError::NoContext),
        other => panic!("expected NoContext, got {:?}", other.map(|r| r.status())),
    }
}
