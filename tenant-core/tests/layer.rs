//! `ContextLayer` sets the incoming context for the inner service, and with
//! `require_tenant` turns away requests without a valid tenant.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use tenant_core::layer::ContextLayer;
use tenant_core::{current, ContextError, Ctx, Incoming, Validated};
use tower::{service_fn, Layer, Service, ServiceExt};

/// What the inner service saw, as its response body.
fn describe(incoming: Option<Incoming>) -> String {
    match incoming {
        None => "no incoming context".to_owned(),
        Some(inc) => format!(
            "tenant={:?} agent={:?} validator={}",
            inc.raw().raw_tenant(),
            inc.raw().raw_agent(),
            inc.has_validator()
        ),
    }
}

/// An inner service that reports the incoming context and counts its calls.
fn inner(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(Response::new(describe(Incoming::current()))) }
    })
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri("/x");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn error_code(res: Response<String>) -> (StatusCode, String, String) {
    let status = res.status();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    let json: serde_json::Value = serde_json::from_str(res.body()).expect("the body is JSON");
    let code = json["error"]["code"]
        .as_str()
        .expect("error.code is a string")
        .to_owned();
    assert!(json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(ct, "application/json");
    (status, code, res.into_body())
}

#[tokio::test]
async fn a_good_request_reaches_the_inner_service_with_its_raw_context() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ContextLayer::new()
        .require_tenant()
        .layer(inner(calls.clone()));
    let res = svc
        .oneshot(request(&[
            ("x-tenant-id", "acme"),
            ("x-agent-id", "agent-7"),
        ]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.body(),
        r#"tenant=Some("acme") agent=Some("agent-7") validator=false"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_require_tenant_a_request_without_tenant_still_reaches_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ContextLayer::new().layer(inner(calls.clone()));
    let res = svc.oneshot(request(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "tenant=None agent=None validator=false");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn no_tenant_is_a_400_with_tenant_required_before_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ContextLayer::new()
        .require_tenant()
        .layer(inner(calls.clone()));
    let res = svc.oneshot(request(&[("x-agent-id", "a1")])).await.unwrap();
    let (status, code, body) = error_code(res);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code, "TENANT_REQUIRED");
    assert_eq!(body, ContextError::TenantRequired.to_json_body());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_reserved_or_malformed_tenant_is_a_400_with_tenant_invalid() {
    for bad in ["default", "NULL", "a;b", "acme'--", "-"] {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = ContextLayer::new()
            .require_tenant()
            .layer(inner(calls.clone()));
        let res = svc.oneshot(request(&[("x-tenant-id", bad)])).await.unwrap();
        let (status, code, _) = error_code(res);
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "TENANT_INVALID"),
            "{bad}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{bad}");
    }
}

#[tokio::test]
async fn a_malformed_agent_is_refused_when_the_tenant_is_required() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ContextLayer::new()
        .require_tenant()
        .layer(inner(calls.clone()));
    let res = svc
        .oneshot(request(&[("x-tenant-id", "acme"), ("x-agent-id", "none")]))
        .await
        .unwrap();
    let (_, code, _) = error_code(res);
    assert_eq!(code, "AGENT_INVALID");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn ambiguous_headers_are_refused_even_without_require_tenant() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ContextLayer::new().layer(inner(calls.clone()));
    let req = Request::builder()
        .header("x-tenant-id", "acme")
        .header("x-tenant-id", "globex")
        .body(())
        .unwrap();
    let (status, code, _) = error_code(svc.clone().oneshot(req).await.unwrap());
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "HEADER_REPEATED")
    );
    let (_, code, _) = error_code(
        svc.oneshot(request(&[("x-tenant-id", "acme,globex")]))
            .await
            .unwrap(),
    );
    assert_eq!(code, "HEADER_REPEATED");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_layer_validator_is_visible_to_the_inner_service_and_runs_there() {
    let validator_calls = Arc::new(AtomicUsize::new(0));
    let counted = validator_calls.clone();
    let layer = ContextLayer::new().with_validator(move |ctx: Ctx<Validated>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            match ctx.tenant_id().as_str() {
                "acme" => Ok(()),
                _ => Err(ContextError::forbidden("unknown tenant")),
            }
        }
    });
    // What `#[with_context]` does: validate the incoming context with its validator.
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        let incoming = Incoming::current().expect("set by the layer");
        assert!(incoming.has_validator());
        let body = match incoming.validate::<Validated>().await {
            Ok(ctx) => ctx.to_string(),
            Err(e) => e.code().to_owned(),
        };
        Ok::<_, Infallible>(Response::new(body))
    }));
    let ok = svc
        .clone()
        .oneshot(request(&[("x-tenant-id", "acme")]))
        .await
        .unwrap();
    assert_eq!(ok.body(), "[t:acme]");
    let no = svc
        .oneshot(request(&[("x-tenant-id", "globex")]))
        .await
        .unwrap();
    assert_eq!(no.body(), "TENANT_FORBIDDEN");
    assert_eq!(validator_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn custom_header_names_and_no_validated_context_leaks_in() {
    use http::HeaderName;
    use tenant_core::{http::HeaderNames, Field};
    let names = HeaderNames::default().with(Field::Tenant, HeaderName::from_static("x-org"));
    let svc = ContextLayer::new()
        .require_tenant()
        .header_names(names)
        .layer(service_fn(|_req: Request<()>| async {
            // The layer sets only the incoming (raw) context, never a validated one.
            let body = format!("{} {}", describe(Incoming::current()), current().is_err());
            Ok::<_, Infallible>(Response::new(body))
        }));
    let res = svc
        .clone()
        .oneshot(request(&[("x-org", "acme")]))
        .await
        .unwrap();
    assert_eq!(
        res.body(),
        r#"tenant=Some("acme") agent=None validator=false true"#
    );
    let res = svc
        .oneshot(request(&[("x-tenant-id", "acme")]))
        .await
        .unwrap();
    assert_eq!(error_code(res).1, "TENANT_REQUIRED");
}

#[tokio::test]
async fn the_synchronous_part_of_call_sees_the_incoming_context_too() {
    let svc = ContextLayer::new().layer(service_fn(|_req: Request<()>| {
        let seen_in_call = describe(Incoming::current());
        async move { Ok::<_, Infallible>(Response::new(seen_in_call)) }
    }));
    let res = svc
        .oneshot(request(&[("x-tenant-id", "acme")]))
        .await
        .unwrap();
    assert_eq!(
        res.body(),
        r#"tenant=Some("acme") agent=None validator=false"#
    );
}

#[test]
fn layer_and_service_are_clone_and_debug() {
    fn check<T: Clone + std::fmt::Debug>(_: &T) {}
    let layer = ContextLayer::new()
        .require_tenant()
        .with_validator(|_: Ctx<Validated>| async { Ok(()) });
    check(&layer);
    assert!(format!("{layer:?}").contains("require_tenant: true"));
    let svc = layer.layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let _ = svc.clone();
    assert!(format!("{svc:?}").starts_with("ContextService"));
}
