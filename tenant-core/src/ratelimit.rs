//! A per-tenant rate limit at the HTTP edge (feature `ratelimit`).
//!
//! [`TenantRateLimitLayer`] counts requests per *resolved* tenant: the
//! tenant of the caller's [`Principal`](crate::Principal) when an
//! authenticated source fixed one, else the request's raw tenant. It must
//! run inside a [`ContextLayer`](crate::layer::ContextLayer), which
//! resolves the tenant first (with axum: add it with `.layer(..)` *before*
//! the `ContextLayer`, so that the `ContextLayer` wraps it). A tenant over
//! its quota gets `429 Too Many Requests` with `Retry-After` and the JSON
//! envelope `{"error":{"code":"RATE_LIMITED",...}}`; the other tenants do
//! not notice. The limiter is [`governor`]'s GCRA, one bucket per tenant.
//!
//! ```
//! use std::num::NonZeroU32;
//! use tenant_core::ratelimit::{Quota, TenantRateLimitLayer};
//!
//! // 50 requests per second per tenant, bursts of 100; acme pays for more.
//! let layer = TenantRateLimitLayer::new(
//!     Quota::per_second(NonZeroU32::new(50).unwrap()).allow_burst(NonZeroU32::new(100).unwrap()),
//! )
//! .tenant("acme", Quota::per_second(NonZeroU32::new(500).unwrap()));
//! # let _ = layer;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::http::{HeaderValue, Request, Response, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use tower_layer::Layer;
use tower_service::Service;

pub use governor::Quota;

use crate::response::{json_envelope, JSON_CONTENT_TYPE};
use crate::scope::Incoming;

/// The stable code of a request refused by the rate limit.
pub const RATE_LIMITED: &str = "RATE_LIMITED";

type Keyed = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;
type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// How many requests pass between two sweeps of idle tenants' buckets.
const SWEEP_EVERY: u64 = 4096;

/// Limits each tenant's request rate. See the [module documentation](self).
#[derive(Clone)]
pub struct TenantRateLimitLayer {
    inner: Arc<Limits>,
}

struct Limits {
    default: Keyed,
    tenants: HashMap<String, Direct>,
    clock: DefaultClock,
    seen: AtomicU64,
}

impl fmt::Debug for TenantRateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRateLimitLayer")
            .field("tenants_with_own_quota", &self.inner.tenants.len())
            .finish()
    }
}

impl TenantRateLimitLayer {
    /// Every tenant gets `quota`, each in its own bucket.
    pub fn new(quota: Quota) -> Self {
        TenantRateLimitLayer {
            inner: Arc::new(Limits {
                default: RateLimiter::hashmap(quota),
                tenants: HashMap::new(),
                clock: DefaultClock::default(),
                seen: AtomicU64::new(0),
            }),
        }
    }

    /// `tenant` gets `quota` instead of the default (a bigger plan, say).
    pub fn tenant(mut self, tenant: impl Into<String>, quota: Quota) -> Self {
        let limits = Arc::get_mut(&mut self.inner).map(|l| {
            l.tenants.insert(tenant.into(), RateLimiter::direct(quota));
        });
        debug_assert!(limits.is_some(), "configure the layer before cloning it");
        self
    }

    /// `Ok` if the tenant may go on, else how long until it may.
    fn check(&self, tenant: &str) -> Result<(), Duration> {
        let limits = &self.inner;
        if limits.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limits.default.retain_recent();
        }
        let verdict = match limits.tenants.get(tenant) {
            Some(own) => own.check(),
            None => limits.default.check_key(&tenant.to_owned()),
        };
        verdict.map_err(|not_until| not_until.wait_time_from(limits.clock.now()))
    }
}

impl<S> Layer<S> for TenantRateLimitLayer {
    type Service = TenantRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantRateLimit {
            inner,
            limits: self.clone(),
        }
    }
}

/// The service [`TenantRateLimitLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct TenantRateLimit<S> {
    inner: S,
    limits: TenantRateLimitLayer,
}

/// The resolved tenant of the request in scope: the principal's, else the
/// raw one.
fn resolved_tenant() -> Option<String> {
    let incoming = Incoming::current()?;
    match incoming.principal() {
        Some(p) => Some(p.tenant().to_owned()),
        None => incoming.raw().raw_tenant().map(str::to_owned),
    }
}

/// The `429` answer: JSON envelope and `Retry-After` in whole seconds
/// (rounded up, at least 1).
fn too_many<B: From<String>>(tenant: &str, wait: Duration) -> Response<B> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let message = format!("tenant `{tenant}` is over its request rate; retry in {secs} s");
    let mut res = Response::new(B::from(json_envelope(RATE_LIMITED, &message)));
    *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = res.headers_mut();
    headers.insert(
        ::http::header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    headers.insert(::http::header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TenantRateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RateLimitFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if let Some(tenant) = resolved_tenant() {
            if let Err(wait) = self.limits.check(&tenant) {
                tracing::debug!(
                    target: "tenant_core::ratelimit",
                    tenant_id = %tenant,
                    retry_after_ms = wait.as_millis() as u64,
                    "tenant over its request rate: 429"
                );
                return RateLimitFuture {
                    state: Some(Err(too_many(&tenant, wait))),
                };
            }
        }
        RateLimitFuture {
            state: Some(Ok(Box::pin(self.inner.call(req)))),
        }
    }
}

/// The response future of [`TenantRateLimit`]: the inner service's, or an
/// immediate `429`.
pub struct RateLimitFuture<F, B> {
    state: Option<Result<Pin<Box<F>>, Response<B>>>,
}

// Nothing in it is ever pinned but the boxed inner future.
impl<F, B> Unpin for RateLimitFuture<F, B> {}

impl<F, B> fmt::Debug for RateLimitFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            Some(Ok(_)) => "Inner",
            Some(Err(_)) => "Limited",
            None => "Done",
        };
        f.debug_struct("RateLimitFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for RateLimitFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Unpin`: the inner future is boxed.
        let this = &mut *self;
        match this.state.as_mut() {
            Some(Ok(fut)) => {
                let out = fut.as_mut().poll(cx);
                if out.is_ready() {
                    this.state = None;
                }
                out
            }
            Some(Err(_)) => match this.state.take() {
                Some(Err(res)) => Poll::Ready(Ok(res)),
                _ => unreachable!("matched a limited state"),
            },
            None => panic!("`RateLimitFuture` polled after completion"),
        }
    }
}
