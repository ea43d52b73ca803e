//! `ContextError` is an axum response, with the same body as the layer's.
#![cfg(all(feature = "axum", feature = "tower"))]

use std::convert::Infallible;

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Request, Response, StatusCode};
use tenant_core::layer::ContextLayer;
use tenant_core::{ContextError, IdError};
use tower::{service_fn, Layer, ServiceExt};

async fn body_text(res: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn each_error_answers_with_its_status_and_json_body() {
    let cases = [
        (ContextError::TenantRequired, StatusCode::BAD_REQUEST),
        (
            ContextError::invalid(tenant_core::Field::Agent, IdError::Empty),
            StatusCode::BAD_REQUEST,
        ),
        (
            ContextError::forbidden("tenant \"acme\" is suspended"),
            StatusCode::FORBIDDEN,
        ),
        (
            ContextError::Unauthenticated {
                reason: "no bearer token".into(),
            },
            StatusCode::UNAUTHORIZED,
        ),
        (ContextError::NoContext, StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (err, status) in cases {
        let code = err.code();
        let message = err.to_string();
        let expected_body = err.to_json_body();
        let res = err.into_response();
        assert_eq!(res.status(), status, "{code}");
        assert_eq!(res.headers()["content-type"], "application/json", "{code}");
        let body = body_text(res).await;
        assert_eq!(body, expected_body, "{code}");
        // The message survives JSON escaping (quotes in a validator's reason).
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], code);
        assert_eq!(json["error"]["message"], message);
    }
}

#[tokio::test]
async fn the_layer_works_with_axum_bodies_and_renders_the_same_body() {
    let svc = ContextLayer::new()
        .require_tenant()
        .layer(service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("reached")))
        }));
    let res = svc
        .clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let from_layer = body_text(res).await;
    let from_axum = body_text(ContextError::TenantRequired.into_response()).await;
    assert_eq!(from_layer, from_axum);

    let req = Request::builder()
        .header("x-tenant-id", "acme")
        .body(Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(body_text(res).await, "reached");
}

#[tokio::test]
async fn the_layer_fits_an_axum_router() {
    use axum::routing::get;
    use tenant_core::Incoming;

    async fn whoami() -> Result<String, ContextError> {
        let incoming = Incoming::current().ok_or(ContextError::NoContext)?;
        let ctx = incoming.validate::<tenant_core::Validated>().await?;
        Ok(ctx.to_string())
    }
    let app = axum::Router::new()
        .route("/whoami", get(whoami))
        .layer(ContextLayer::new().require_tenant());

    let req = Request::builder()
        .uri("/whoami")
        .header("x-tenant-id", "acme")
        .header("x-agent-id", "agent-7")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "[t:acme a:agent-7]");

    let req = Request::builder()
        .uri("/whoami")
        .header("x-tenant-id", "NONE")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&body_text(res).await).unwrap();
    assert_eq!(json["error"]["code"], "TENANT_INVALID");
}
