//! A tower [`Layer`] that sets the incoming context (feature `tower`).
//!
//! [`ContextLayer`] reads the context headers of each request and runs the
//! inner service inside an [`Incoming`] scope, where `#[with_context]`
//! handlers find (and validate) it. With
//! [`require_tenant`](ContextLayer::require_tenant) it also turns away a
//! request that has no valid tenant, with `400` and a JSON body
//! `{"error":{"code":"TENANT_REQUIRED","message":"..."}}`, before the inner
//! service is called.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tenant_core::{layer::ContextLayer, Incoming};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let svc = ServiceBuilder::new()
//!     .layer(ContextLayer::new().require_tenant())
//!     .service(service_fn(|_req: Request<()>| async {
//!         let incoming = Incoming::current().expect("set by the layer");
//!         Ok::<_, Infallible>(Response::new(format!("{:?}", incoming.raw().raw_tenant())))
//!     }));
//!
//! let req = Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.into_body(), "Some(\"acme\")");
//!
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), 400);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::ctx::Validated;
use crate::error::ContextError;
use crate::http::HeaderNames;
use crate::scope::{Incoming, IncomingFuture};
use crate::validator::Validator;

/// Sets the incoming context from request headers for the inner service.
///
/// * Context headers that are repeated, comma-joined or not text are always
///   refused with `400` ([`ContextError::HeaderRepeated`],
///   [`ContextError::HeaderNotText`]): the request is ambiguous about whom
///   it acts for.
/// * With [`require_tenant`](Self::require_tenant), a request whose raw
///   context does not pass the identifier rules (no tenant, `default`, a
///   malformed agent...) is refused with `400` as well. The application's
///   [`Validator`] is not run here: `#[with_context]` runs it when it
///   validates, with the fields the handler requires.
/// * Otherwise the inner service runs inside
///   [`Incoming::new(raw).with_validator(..).scope(..)`](Incoming::scope),
///   and its `call` too.
///
/// ```
/// use tenant_core::{layer::ContextLayer, ContextError, Ctx, Validated};
///
/// let layer = ContextLayer::new()
///     .require_tenant()
///     .with_validator(|ctx: Ctx<Validated>| async move {
///         if ctx.tenant_id().as_str().starts_with("test-") {
///             Err(ContextError::forbidden("test tenants are not served here"))
///         } else {
///             Ok(())
///         }
///     });
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContextLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    names: HeaderNames,
    validator: Option<Arc<dyn Validator>>,
    require_tenant: bool,
}

impl ContextLayer {
    /// A layer with the default header names, no validator, and no tenant
    /// requirement.
    ///
    /// ```
    /// let layer = tenant_core::layer::ContextLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Refuses, with `400` and a JSON error body, every request whose raw
    /// context does not validate (no tenant, a reserved or malformed id).
    ///
    /// ```
    /// let layer = tenant_core::layer::ContextLayer::new().require_tenant();
    /// # let _ = layer;
    /// ```
    pub fn require_tenant(self) -> Self {
        self.edit(|c| c.require_tenant = true)
    }

    /// The application's check, handed to handlers through
    /// [`Incoming::validator`].
    ///
    /// ```
    /// use tenant_core::{layer::ContextLayer, Ctx, Validated};
    /// let layer = ContextLayer::new().with_validator(|_: Ctx<Validated>| async { Ok(()) });
    /// # let _ = layer;
    /// ```
    pub fn with_validator(self, validator: impl Validator) -> Self {
        self.with_validator_arc(Arc::new(validator))
    }

    /// [`with_validator`](Self::with_validator) for a validator that is
    /// already shared.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tenant_core::{layer::ContextLayer, Ctx, Validated, Validator};
    /// let v: Arc<dyn Validator> = Arc::new(|_: Ctx<Validated>| async { Ok(()) });
    /// let layer = ContextLayer::new().with_validator_arc(v);
    /// # let _ = layer;
    /// ```
    pub fn with_validator_arc(self, validator: Arc<dyn Validator>) -> Self {
        self.edit(|c| c.validator = Some(validator))
    }

    /// Reads the context from other headers than `X-Tenant-ID`, ...
    ///
    /// ```
    /// use http::HeaderName;
    /// use tenant_core::{http::HeaderNames, layer::ContextLayer, Field};
    /// let layer = ContextLayer::new()
    ///     .header_names(HeaderNames::default().with(Field::Tenant, HeaderName::from_static("x-org")));
    /// # let _ = layer;
    /// ```
    pub fn header_names(self, names: HeaderNames) -> Self {
        self.edit(|c| c.names = names)
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`ContextLayer`] wraps around an inner service.
///
/// ```
/// use tenant_core::layer::{ContextLayer, ContextService};
/// use tower::{service_fn, Layer};
///
/// let svc: ContextService<_> = ContextLayer::new().layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
pub struct ContextService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ContextService<S> {
    fn incoming<B>(&self, req: &Request<B>) -> Result<Incoming, ContextError> {
        let raw = self.config.names.extract(req.headers())?;
        if self.config.require_tenant {
            raw.validate::<Validated>()?;
        }
        let incoming = Incoming::new(raw);
        Ok(match &self.config.validator {
            Some(v) => incoming.with_validator(Arc::clone(v)),
            None => incoming,
        })
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ContextService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ContextFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.incoming(&req) {
            Err(e) => ContextFuture {
                state: State::Rejected {
                    response: Some(e.to_http_response()),
                },
            },
            Ok(incoming) => {
                // Some services do work in `call` itself; it sees the context too.
                let fut = incoming.sync_scope(|| self.inner.call(req));
                ContextFuture {
                    state: State::Inner {
                        fut: incoming.scope(fut),
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ContextService`]: the inner service's
    /// future inside the incoming scope, or an immediate `400`.
    pub struct ContextFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Rejected { response: Option<Response<B>> },
        Inner { #[pin] fut: IncomingFuture<F> },
    }
}

impl<F, B> fmt::Debug for ContextFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "Rejected",
            State::Inner { .. } => "Inner",
        };
        f.debug_struct("ContextFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ContextFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Rejected { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("`ContextFuture` polled after completion"),
            },
            StateProj::Inner { fut } => fut.poll(cx),
        }
    }
}
