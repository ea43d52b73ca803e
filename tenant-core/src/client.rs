//! The context on outgoing calls (feature `client`).
//!
//! [`PropagateContextLayer`] wraps an HTTP client service (a hyper-util
//! client, a `tower::Service<http::Request<B>>`...) so that every request
//! it sends carries the current validated context ([`current`](crate::current()))
//! in the context headers, and optionally the bearer token the current
//! request came with. A request made outside any context is not sent:
//! it fails with [`ClientError::NoContext`], so a call never goes out
//! without its tenant by accident.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tenant_core::client::PropagateContextLayer;
//! use tenant_core::{Ctx, Validated};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Stands for the HTTP client: answers with the tenant header it was sent.
//! let client = ServiceBuilder::new()
//!     .layer(PropagateContextLayer::new())
//!     .service(service_fn(|req: Request<()>| async move {
//!         Ok::<_, Infallible>(Response::new(format!("{:?}", req.headers().get("x-tenant-id"))))
//!     }));
//!
//! let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
//! let res = ctx.scope(client.clone().oneshot(Request::new(()))).await.unwrap();
//! assert_eq!(res.into_body(), "Some(\"acme\")");
//!
//! // No context: not sent.
//! let err = client.oneshot(Request::new(())).await.unwrap_err();
//! assert_eq!(err.to_string(), tenant_core::ContextError::NoContext.to_string());
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::http::header::{HeaderValue, AUTHORIZATION};
use ::http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ContextError;
use crate::forward::incoming_bearer;
use crate::http::HeaderNames;
use crate::scope::current;

/// Adds the current context's headers to outgoing requests. See the
/// [module documentation](self).
///
/// ```
/// use tenant_core::client::PropagateContextLayer;
/// let layer = PropagateContextLayer::new().forward_bearer();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PropagateContextLayer {
    names: HeaderNames,
    forward_bearer: bool,
}

impl PropagateContextLayer {
    /// Writes the default context headers (`X-Tenant-ID`, ...) and no
    /// `Authorization`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also sends the bearer token the current request was authenticated
    /// with ([`incoming_bearer`](crate::incoming_bearer())), as
    /// `Authorization: Bearer ...`, unless the outgoing request already has
    /// an `Authorization` header. Only for calls to services that accept
    /// the same tokens (the same audience): a token is a credential.
    pub fn forward_bearer(mut self) -> Self {
        self.forward_bearer = true;
        self
    }

    /// Writes the context under other header names.
    pub fn header_names(mut self, names: HeaderNames) -> Self {
        self.names = names;
        self
    }
}

impl<S> Layer<S> for PropagateContextLayer {
    type Service = PropagateContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`PropagateContextLayer`] wraps around a client.
///
/// ```
/// use tenant_core::client::{PropagateContext, PropagateContextLayer};
/// use tower::{service_fn, Layer};
/// let svc: PropagateContext<_> = PropagateContextLayer::new()
///     .layer(service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(()) }));
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct PropagateContext<S> {
    inner: S,
    layer: PropagateContextLayer,
}

/// The error of a [`PropagateContext`] service: no context to send, or the
/// inner client's error.
///
/// ```
/// use tenant_core::client::ClientError;
/// let err: ClientError<std::io::Error> = ClientError::NoContext(tenant_core::ContextError::NoContext);
/// assert!(matches!(err, ClientError::NoContext(_)));
/// ```
#[derive(Debug)]
pub enum ClientError<E> {
    /// The request was made outside any validated context, and not sent.
    NoContext(ContextError),
    /// The inner client failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoContext(e) => fmt::Display::fmt(e, f),
            ClientError::Inner(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ClientError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::NoContext(e) => Some(e),
            ClientError::Inner(e) => Some(e),
        }
    }
}

impl<S, B> Service<Request<B>> for PropagateContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = ClientError<S::Error>;
    type Future = PropagateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ClientError::Inner)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // `call` runs in the caller's task: the context is the caller's.
        let ctx = match current() {
            Ok(ctx) => ctx,
            Err(e) => {
                return PropagateFuture {
                    inner: None,
                    error: Some(e),
                }
            }
        };
        let headers = req.headers_mut();
        self.layer.names.inject(&ctx, headers);
        if self.layer.forward_bearer && !headers.contains_key(AUTHORIZATION) {
            let value =
                incoming_bearer().and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
            if let Some(mut value) = value {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        PropagateFuture {
            inner: Some(self.inner.call(req)),
            error: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`PropagateContext`].
    pub struct PropagateFuture<F> {
        #[pin]
        inner: Option<F>,
        error: Option<ContextError>,
    }
}

impl<F> fmt::Debug for PropagateFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateFuture")
            .field("sent", &self.inner.is_some())
            .finish()
    }
}

impl<F, T, E> Future for PropagateFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, ClientError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(fut) => fut.poll(cx).map_err(ClientError::Inner),
            None => Poll::Ready(Err(ClientError::NoContext(
                this.error.take().unwrap_or(ContextError::NoContext),
            ))),
        }
    }
}
