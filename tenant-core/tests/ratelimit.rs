//! The per-tenant rate limit at the edge: keyed by the resolved tenant,
//! `429 RATE_LIMITED` with `Retry-After` in the JSON envelope, one tenant's
//! flood unnoticed by the others.
#![cfg(all(feature = "ratelimit", feature = "edge"))]

use std::convert::Infallible;
use std::num::NonZeroU32;

use http::{Request, Response, StatusCode};
use tenant_core::edge::Resolver;
use tenant_core::layer::ContextLayer;
use tenant_core::ratelimit::{Quota, TenantRateLimitLayer};
use tower::{service_fn, Layer, ServiceExt};

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap())
}

/// The service stack: resolution first, then the limit, then a handler
/// that says "ok".
fn stack(
    resolver: Option<Resolver>,
    limit: TenantRateLimitLayer,
) -> impl tower::Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let inner = limit.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new("ok".to_owned()))
    }));
    let context = match resolver {
        Some(r) => ContextLayer::new().resolver(r),
        None => ContextLayer::new(),
    };
    context.layer(inner)
}

async fn send(
    svc: impl tower::Service<Request<()>, Response = Response<String>, Error = Infallible>,
    tenant: Option<&str>,
) -> Response<String> {
    let mut req = Request::builder();
    if let Some(t) = tenant {
        req = req.header("x-tenant-id", t);
    }
    svc.oneshot(req.body(()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let svc = stack(
        Some(Resolver::new().trusted_header()),
        TenantRateLimitLayer::new(per_minute(2)),
    );
    for _ in 0..2 {
        assert_eq!(
            send(svc.clone(), Some("acme")).await.status(),
            StatusCode::OK
        );
    }
    let res = send(svc.clone(), Some("acme")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["content-type"], "application/json");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After: {retry}");
    let body: serde_json::Value = serde_json::from_str(res.body()).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert!(body["error"]["message"].as_str().unwrap().contains("acme"));
    // globex has its own bucket.
    for _ in 0..2 {
        assert_eq!(
            send(svc.clone(), Some("globex")).await.status(),
            StatusCode::OK
        );
    }
    // A request without a tenant is not counted against anyone (the
    // handler refuses it on its own terms).
    assert_eq!(send(svc.clone(), None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_with_its_own_quota_gets_it() {
    let limit = TenantRateLimitLayer::new(per_minute(1)).tenant("big-plan", per_minute(5));
    let svc = stack(Some(Resolver::new().trusted_header()), limit);
    for _ in 0..5 {
        assert_eq!(
            send(svc.clone(), Some("big-plan")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send(svc.clone(), Some("big-plan")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(svc.clone(), Some("small")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(svc.clone(), Some("small")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_key_is_the_resolved_tenant_whatever_its_spelling_in_the_header() {
    // Header mode: the raw tenant as sent. A refused spelling never reaches
    // the limit (the layer answers 400 first), so a flood of junk tenants
    // cannot fill the buckets of real ones.
    let svc = stack(None, TenantRateLimitLayer::new(per_minute(1)));
    assert_eq!(
        send(svc.clone(), Some("acme")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(svc.clone(), Some("acme")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let strict =
        ContextLayer::new()
            .require_tenant()
            .layer(TenantRateLimitLayer::new(per_minute(1)).layer(service_fn(
                |_req: Request<()>| async { Ok::<_, Infallible>(Response::new("ok".to_owned())) },
            )));
    assert_eq!(
        send(strict.clone(), Some("default")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(strict.clone(), Some("acme")).await.status(),
        StatusCode::OK
    );
}
