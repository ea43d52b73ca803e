//! Where a request's tenant comes from (feature `edge`; bearer tokens with
//! feature `jwt`).
//!
//! A [`Resolver`] is a chain of sources, consulted in the order they were
//! added:
//!
//! * [`trusted_header`](Resolver::trusted_header): `X-Tenant-ID` as sent,
//!   for a service that only a gateway can reach;
//! * [`host`](Resolver::host): the subdomain of `Host` (`acme.example.com`
//!   is `acme`), or of `X-Forwarded-Host` when the peer is a trusted proxy
//!   ([`HostSource`]);
//! * [`bearer`](Resolver::bearer) (feature `jwt`): the tenant claim of a
//!   verified JWT ([`BearerAuth`]).
//!
//! The first source that names a tenant sets it; every later source that
//! names one must name the same, else the request is refused with
//! `403 TENANT_MISMATCH`. An `X-Tenant-ID` header that is not a trusted
//! source is not ignored either: it must agree with the resolved tenant
//! (`403 TENANT_MISMATCH`), and with no resolved tenant it is
//! `403 TENANT_HEADER_UNTRUSTED`. The other context headers (`X-Agent-ID`,
//! `X-Conversation-ID`, `X-Collection-ID`) are read as before; a token's
//! agent claim must agree with `X-Agent-ID` (`403 AGENT_MISMATCH`).
//!
//! Give the resolver to [`ContextLayer::resolver`](crate::layer::ContextLayer::resolver):
//! what it resolves becomes the [`Incoming`](crate::Incoming) context that
//! `#[with_context]` validates, with the application's validator, exactly
//! as the headers did before. A refusal is an [`EdgeError`] with a stable
//! code, in the JSON envelope of every other error.
//!
//! ```
//! use tenant_core::edge::{HostSource, Resolver};
//!
//! let resolver = Resolver::new()
//!     .host(HostSource::new("example.com").trust_proxy("10.0.0.0/8".parse().unwrap()));
//! let req = http::Request::builder()
//!     .header("host", "acme.example.com")
//!     .body(())
//!     .unwrap();
//! let resolved = resolver.resolve(&req)?;
//! assert_eq!(resolved.raw().raw_tenant(), Some("acme"));
//! # Ok::<(), tenant_core::edge::EdgeError>(())
//! ```

mod error;
mod host;
#[cfg(feature = "jwt")]
mod jwt;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ::http::{Extensions, HeaderMap, Request};

use crate::ctx::{Ctx, Unvalidated};
use crate::error::{ContextError, Field};
use crate::http::HeaderNames;
use crate::id::TenantId;
use crate::principal::{Principal, PrincipalSource};

pub use error::{EdgeError, TokenError};
pub use host::{HostSource, ProxyNet, ProxyNetError};
#[cfg(feature = "jwt")]
pub use jwt::{
    BearerAuth, ClaimNames, JwtKey, KeyError, VerifiedToken, MAX_TOKEN_BYTES, MIN_HS256_SECRET,
};

/// The address of the client (or proxy) at the other end of the
/// connection, put in the request's extensions by the server loop.
///
/// [`HostSource`] reads it to decide whether `X-Forwarded-Host` comes from a
/// trusted proxy. With feature `axum`, axum's
/// `ConnectInfo<SocketAddr>` is read as well.
///
/// ```
/// use tenant_core::edge::PeerAddr;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("10.0.0.7:5000".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The peer address of a request: [`PeerAddr`], else (feature `axum`)
/// `ConnectInfo<SocketAddr>`.
pub(crate) fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<::axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    None
}

#[derive(Clone)]
enum Source {
    TrustedHeader,
    Host(Arc<HostSource>),
    #[cfg(feature = "jwt")]
    Bearer(Arc<BearerAuth>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::TrustedHeader => f.write_str("TrustedHeader"),
            Source::Host(h) => f.debug_tuple("Host").field(h).finish(),
            #[cfg(feature = "jwt")]
            Source::Bearer(b) => f.debug_tuple("Bearer").field(b).finish(),
        }
    }
}

/// The chain of sources a request's tenant is resolved from. See the
/// [module documentation](self) for the rules.
///
/// ```
/// use tenant_core::edge::Resolver;
///
/// // Today's behaviour, named: the gateway sets `X-Tenant-ID`.
/// let resolver = Resolver::new().trusted_header();
/// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
/// assert_eq!(resolver.resolve(&req)?.raw().raw_tenant(), Some("acme"));
/// # Ok::<(), tenant_core::edge::EdgeError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    sources: Vec<Source>,
    names: HeaderNames,
}

/// What a [`Resolver`] found: the raw context for
/// [`Incoming`](crate::Incoming) and, with a bearer source, the verified
/// token.
#[derive(Debug, Clone)]
pub struct Resolved {
    raw: Ctx<Unvalidated>,
    principal: Option<Principal>,
    #[cfg(feature = "jwt")]
    token: Option<VerifiedToken>,
}

impl Resolved {
    /// The raw context: the resolved tenant and the other context headers.
    ///
    /// ```
    /// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
    /// let resolved = tenant_core::edge::Resolver::new().trusted_header().resolve(&req)?;
    /// assert_eq!(resolved.raw().raw_tenant(), Some("acme"));
    /// # Ok::<(), tenant_core::edge::EdgeError>(())
    /// ```
    pub fn raw(&self) -> &Ctx<Unvalidated> {
        &self.raw
    }

    /// The raw context, by value.
    ///
    /// ```
    /// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
    /// let raw = tenant_core::edge::Resolver::new().trusted_header().resolve(&req)?.into_raw();
    /// assert_eq!(raw.raw_tenant(), Some("acme"));
    /// # Ok::<(), tenant_core::edge::EdgeError>(())
    /// ```
    pub fn into_raw(self) -> Ctx<Unvalidated> {
        self.raw
    }

    /// Who the caller is: the tenant (and agent) an authenticated source
    /// fixed, or `None` when no source named a tenant.
    ///
    /// ```
    /// use tenant_core::PrincipalSource;
    /// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
    /// let resolved = tenant_core::edge::Resolver::new().trusted_header().resolve(&req)?;
    /// let principal = resolved.principal().unwrap();
    /// assert_eq!((principal.tenant(), principal.source()), ("acme", PrincipalSource::TrustedHeader));
    /// # Ok::<(), tenant_core::edge::EdgeError>(())
    /// ```
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The incoming context of the request: raw values and principal.
    pub(crate) fn into_incoming(self) -> crate::Incoming {
        crate::Incoming::authenticated(self.raw, self.principal)
    }

    /// The verified bearer token, if a bearer source found one.
    ///
    /// ```
    /// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
    /// let resolved = tenant_core::edge::Resolver::new().trusted_header().resolve(&req)?;
    /// assert!(resolved.token().is_none());
    /// # Ok::<(), tenant_core::edge::EdgeError>(())
    /// ```
    #[cfg(feature = "jwt")]
    pub fn token(&self) -> Option<&VerifiedToken> {
        self.token.as_ref()
    }

    pub(crate) fn bearer(&self) -> Option<Arc<str>> {
        #[cfg(feature = "jwt")]
        if let Some(token) = &self.token {
            return Some(token.shared_token());
        }
        None
    }
}

impl Resolver {
    /// An empty chain: no source names a tenant, and an `X-Tenant-ID`
    /// header is refused as untrusted. Add sources in the order they are
    /// consulted.
    ///
    /// ```
    /// let resolver = tenant_core::edge::Resolver::new();
    /// # let _ = resolver;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the `X-Tenant-ID` header (or the configured tenant header) as a
    /// trusted source: only for a service that no client reaches except
    /// through a gateway that sets it.
    ///
    /// ```
    /// let resolver = tenant_core::edge::Resolver::new().trusted_header();
    /// # let _ = resolver;
    /// ```
    pub fn trusted_header(mut self) -> Self {
        self.sources.push(Source::TrustedHeader);
        self
    }

    /// Adds the request's host as a source.
    ///
    /// ```
    /// use tenant_core::edge::{HostSource, Resolver};
    /// let resolver = Resolver::new().host(HostSource::new("example.com"));
    /// # let _ = resolver;
    /// ```
    pub fn host(mut self, host: HostSource) -> Self {
        self.sources.push(Source::Host(Arc::new(host)));
        self
    }

    /// Adds the bearer token of the `Authorization` header as a source.
    ///
    /// ```
    /// use tenant_core::edge::{BearerAuth, JwtKey, Resolver};
    /// let resolver = Resolver::new()
    ///     .bearer(BearerAuth::new(JwtKey::hs256(b"a development secret of 32 bytes!")?));
    /// # let _ = resolver;
    /// # Ok::<(), tenant_core::edge::KeyError>(())
    /// ```
    #[cfg(feature = "jwt")]
    pub fn bearer(mut self, bearer: BearerAuth) -> Self {
        self.sources.push(Source::Bearer(Arc::new(bearer)));
        self
    }

    /// Reads the context headers under other names.
    ///
    /// ```
    /// use http::HeaderName;
    /// use tenant_core::{edge::Resolver, http::HeaderNames, Field};
    /// let resolver = Resolver::new()
    ///     .trusted_header()
    ///     .header_names(HeaderNames::default().with(Field::Tenant, HeaderName::from_static("x-org")));
    /// # let _ = resolver;
    /// ```
    pub fn header_names(mut self, names: HeaderNames) -> Self {
        self.names = names;
        self
    }

    /// Resolves the raw context of `req` (its headers and extensions).
    ///
    /// ```
    /// use tenant_core::edge::Resolver;
    /// let req = http::Request::builder().header("x-tenant-id", "acme").body(()).unwrap();
    /// let err = Resolver::new().resolve(&req).unwrap_err();
    /// assert_eq!(err.code(), "TENANT_HEADER_UNTRUSTED");
    /// ```
    pub fn resolve<B>(&self, req: &Request<B>) -> Result<Resolved, EdgeError> {
        self.resolve_parts(req.headers(), req.extensions())
    }

    /// [`resolve`](Self::resolve) from a request's parts.
    ///
    /// ```
    /// use http::{Extensions, HeaderMap};
    /// use tenant_core::edge::Resolver;
    /// let resolved = Resolver::new().resolve_parts(&HeaderMap::new(), &Extensions::new())?;
    /// assert_eq!(resolved.raw().raw_tenant(), None);
    /// # Ok::<(), tenant_core::edge::EdgeError>(())
    /// ```
    pub fn resolve_parts(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Resolved, EdgeError> {
        self.resolve_attributed(headers, extensions)
            .map_err(|(e, _)| e)
    }

    /// [`resolve_parts`](Self::resolve_parts); a refusal because the tenant
    /// header names another tenant than the authenticated source comes with
    /// that source's tenant (the caller), for the refusal's log line.
    pub(crate) fn resolve_attributed(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Resolved, (EdgeError, Option<TenantId>)> {
        let mut raw = self.names.extract(headers).map_err(|e| (e.into(), None))?;
        let header_tenant = raw.raw_tenant().map(str::to_owned);
        let mut tenant: Option<(String, &'static str, PrincipalSource)> = None;
        #[cfg(feature = "jwt")]
        let mut token: Option<VerifiedToken> = None;
        let mut header_trusted = false;
        for source in &self.sources {
            let (found, label, kind) = match source {
                Source::TrustedHeader => {
                    header_trusted = true;
                    (
                        header_tenant.clone(),
                        "the tenant header",
                        PrincipalSource::TrustedHeader,
                    )
                }
                Source::Host(host) => (
                    host.tenant(headers, extensions).map_err(|e| (e, None))?,
                    "the host",
                    PrincipalSource::Host,
                ),
                #[cfg(feature = "jwt")]
                Source::Bearer(bearer) => {
                    match bearer.verify(headers).map_err(|e| (e.into(), None))? {
                        Some(verified) => {
                            let t = verified.tenant().as_str().to_owned();
                            token = Some(verified);
                            (Some(t), "the bearer token", PrincipalSource::BearerToken)
                        }
                        None => (None, "the bearer token", PrincipalSource::BearerToken),
                    }
                }
            };
            let Some(found) = found else { continue };
            match &tenant {
                None => tenant = Some((found, label, kind)),
                Some((first, first_label, _)) if *first != found => {
                    return Err((
                        ContextError::TenantMismatch {
                            first: (*first_label).into(),
                            second: label.into(),
                        }
                        .into(),
                        None,
                    ))
                }
                Some(_) => {}
            }
        }
        if let (Some(sent), false) = (&header_tenant, header_trusted) {
            match &tenant {
                None => return Err((EdgeError::TenantHeaderUntrusted, None)),
                Some((resolved, label, _)) if resolved != sent => {
                    return Err((
                        ContextError::TenantMismatch {
                            first: "the tenant header".into(),
                            second: (*label).into(),
                        }
                        .into(),
                        TenantId::parse(resolved).ok(),
                    ))
                }
                Some(_) => {}
            }
        }
        #[allow(unused_mut)]
        let mut principal_agent: Option<String> = None;
        #[cfg(feature = "jwt")]
        if let Some(agent) = token.as_ref().and_then(VerifiedToken::agent) {
            match raw.raw_agent() {
                Some(sent) if sent != agent.as_str() => {
                    return Err((
                        EdgeError::AgentMismatch,
                        tenant
                            .as_ref()
                            .and_then(|(t, _, _)| TenantId::parse(t).ok()),
                    ))
                }
                _ => {
                    raw = raw.with_field(Field::Agent, Some(agent.as_str().to_owned()));
                    principal_agent = Some(agent.as_str().to_owned());
                }
            }
        }
        // A gateway that is trusted for the tenant header sets the agent
        // header too; no other source vouches for `X-Agent-ID`.
        if principal_agent.is_none() && header_trusted {
            principal_agent = raw.raw_agent().map(str::to_owned);
        }
        let principal = tenant
            .as_ref()
            .map(|(t, _, kind)| Principal::authenticated(t, principal_agent.as_deref(), *kind));
        raw = raw.with_field(Field::Tenant, tenant.map(|(t, _, _)| t));
        Ok(Resolved {
            raw,
            principal,
            #[cfg(feature = "jwt")]
            token,
        })
    }
}
