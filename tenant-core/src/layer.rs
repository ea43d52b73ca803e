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
#[cfg(feature = "edge")]
use crate::edge::{EdgeError, Resolver};
use crate::error::ContextError;
use crate::forward::{self, BearerFuture};
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
/// * Otherwise the inner service runs inside the request's [`Incoming`]
///   scope (raw values, the caller's [`Principal`](crate::Principal) when a
///   [`resolver`](Self::resolver) authenticated one, and the validator),
///   and its `call` too. Without a resolver the layer reads the context
///   headers as sent and authenticates nobody: contexts made from them are
///   never authorized, so a pool that requires authorization refuses them.
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
    #[cfg(feature = "edge")]
    resolver: Option<Arc<Resolver>>,
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

    /// The application's check, run when `#[with_context]` validates a
    /// request's context. It may refuse any context; it authorizes one only
    /// for the caller's [`Principal`](crate::Principal), which only a
    /// [`resolver`](Self::resolver) with an authenticated source fixes: a
    /// layer without one reads `X-Tenant-ID` as sent and authorizes nothing.
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

    /// Resolves the tenant with `resolver` (feature `edge`): a chain of
    /// trusted header, host and bearer token, instead of the bare
    /// `X-Tenant-ID` header. What it resolves is the [`Incoming`] context
    /// handlers validate; what it refuses is answered here, with the
    /// [`EdgeError`]'s status, JSON body and, for a token,
    /// `WWW-Authenticate`. A verified token is put in the request's
    /// extensions ([`VerifiedToken`](crate::edge::VerifiedToken)) and
    /// in scope for [`incoming_bearer`](crate::incoming_bearer) (the client
    /// layer forwards it). The resolver's header names replace
    /// [`header_names`](Self::header_names).
    ///
    /// ```
    /// use tenant_core::edge::{HostSource, Resolver};
    /// use tenant_core::layer::ContextLayer;
    ///
    /// let layer = ContextLayer::new()
    ///     .resolver(Resolver::new().host(HostSource::new("example.com")))
    ///     .require_tenant();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "edge")]
    pub fn resolver(self, resolver: Resolver) -> Self {
        self.edit(|c| c.resolver = Some(Arc::new(resolver)))
    }
}

/// Why the layer answered instead of the inner service.
enum Rejection {
    Context(ContextError),
    /// With the authenticated caller's tenant when the request named
    /// another tenant or agent than its authenticated source.
    #[cfg(feature = "edge")]
    Edge(EdgeError, Option<crate::TenantId>),
}

/// On a response [`ContextLayer`] refused because the request named
/// another tenant (`TENANT_MISMATCH`) or agent (`AGENT_MISMATCH`) than its
/// authenticated source: that source's tenant, the caller who tried. A
/// response extension, for the application's refusal log; never sent to
/// the client.
///
/// ```
/// # #[cfg(feature = "jwt")] {
/// use tenant_core::layer::RefusedCaller;
/// fn caller(response: &http::Response<String>) -> Option<&str> {
///     response.extensions().get::<RefusedCaller>().map(|c| c.tenant().as_str())
/// }
/// # let _ = caller;
/// # }
/// ```
#[cfg(feature = "edge")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedCaller {
    tenant: crate::TenantId,
}

#[cfg(feature = "edge")]
impl RefusedCaller {
    /// The authenticated caller's tenant.
    pub fn tenant(&self) -> &crate::TenantId {
        &self.tenant
    }
}

impl From<ContextError> for Rejection {
    fn from(e: ContextError) -> Self {
        Rejection::Context(e)
    }
}

impl Rejection {
    fn to_http_response<B: From<String>>(&self) -> Response<B> {
        match self {
            Rejection::Context(e) => e.to_http_response(),
            #[cfg(feature = "edge")]
            Rejection::Edge(e, caller) => {
                let mut response = e.to_http_response();
                if let Some(tenant) = caller {
                    response.extensions_mut().insert(RefusedCaller {
                        tenant: tenant.clone(),
                    });
                }
                response
            }
        }
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
    /// The incoming context of `req`, and the bearer token to forward.
    fn incoming<B>(&self, req: &mut Request<B>) -> Result<(Incoming, Option<Arc<str>>), Rejection> {
        let (incoming, bearer) = match self.resolve(req)? {
            Some(resolved) => resolved,
            None => (
                Incoming::new(self.config.names.extract(req.headers())?),
                None,
            ),
        };
        if self.config.require_tenant {
            incoming.raw().validate::<Validated>()?;
        }
        let incoming = match &self.config.validator {
            Some(v) => incoming.with_validator(Arc::clone(v)),
            None => incoming,
        };
        Ok((incoming, bearer))
    }

    #[cfg(feature = "edge")]
    #[allow(clippy::type_complexity)]
    fn resolve<B>(
        &self,
        req: &mut Request<B>,
    ) -> Result<Option<(Incoming, Option<Arc<str>>)>, Rejection> {
        let Some(resolver) = &self.config.resolver else {
            return Ok(None);
        };
        let resolved = resolver
            .resolve_attributed(req.headers(), req.extensions())
            .map_err(|(e, caller)| Rejection::Edge(e, caller))?;
        let bearer = resolved.bearer();
        #[cfg(feature = "jwt")]
        if let Some(token) = resolved.token() {
            req.extensions_mut().insert(token.clone());
        }
        Ok(Some((resolved.into_incoming(), bearer)))
    }

    #[cfg(not(feature = "edge"))]
    #[allow(clippy::type_complexity)]
    fn resolve<B>(
        &self,
        _req: &mut Request<B>,
    ) -> Result<Option<(Incoming, Option<Arc<str>>)>, Rejection> {
        Ok(None)
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.incoming(&mut req) {
            Err(e) => ContextFuture {
                state: State::Rejected {
                    response: Some(e.to_http_response()),
                },
            },
            Ok((incoming, bearer)) => {
                // Some services do work in `call` itself; it sees the context too.
                let fut = forward::sync_scope(bearer.clone(), || {
                    incoming.sync_scope(|| self.inner.call(req))
                });
                ContextFuture {
                    state: State::Inner {
                        fut: forward::scope(bearer, incoming.scope(fut)),
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
        Inner { #[pin] fut: BearerFuture<IncomingFuture<F>> },
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
