//! Tenant isolation as a compile-time property.
//!
//! A handler annotated with [`#[with_context(tenant, agent)]`](with_context)
//! receives a [`Ctx<Validated<WithAgent>>`](Ctx): a context whose tenant and
//! agent have been parsed and checked, which is the only thing that can open a
//! tenant transaction (`tenant_sqlx::TenantPool::begin`). The raw values
//! arrive as a [`Ctx<Unvalidated>`] from HTTP headers or a worker envelope;
//! validation is the only way from one to the other.
//!
//! ```
//! use tenant_core::{Ctx, Validated, WithAgent};
//!
//! let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
//! let ctx: Ctx<Validated<WithAgent>> = raw.validate()?;
//! assert_eq!(ctx.to_string(), "[t:acme a:agent-7]");
//!
//! // `default` is not a tenant.
//! let err = Ctx::unvalidated().with_tenant("default").validate::<Validated>().unwrap_err();
//! assert_eq!(err.code(), "TENANT_INVALID");
//! # Ok::<(), tenant_core::ContextError>(())
//! ```
//!
//! # Where the context comes from and goes
//!
//! * Task-local scopes: [`Ctx::scope`], [`current`], [`spawn`],
//!   [`spawn_blocking`], and [`Incoming`] for the raw context of a request.
//! * The rules a `#[with_context]` handler gets its context by, for code
//!   written by hand: [`resolve`] and [`resolve_unvalidated`].
//! * Logs: [`Ctx::span`] (a `tracing` span with `tenant_id`, ...) and
//!   [`log_prefix`] (`[t:acme a:agent-7]`) for logs outside `tracing`.
//! * Caches: [`Ctx::key`] gives a [`TenantKey`] that cannot collide across
//!   tenants.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `http` | `tenant_core::http`: extract the raw context from an `http::HeaderMap`, inject a validated one |
//! | `tower` | `tenant_core::layer::ContextLayer`: sets the incoming context for the inner service; optionally refuses requests without a tenant (`400`, JSON body) |
//! | `axum` | `impl axum::response::IntoResponse for ContextError`, with the same JSON body |
//! | `serde` | `tenant_core::envelope::Envelope`: the raw context travels with a worker message and is validated on receipt |
//! | `edge` | `tenant_core::edge::Resolver`: the tenant from a chain of sources (trusted header, host behind trusted proxies) for `ContextLayer::resolver` |
//! | `jwt` | `tenant_core::edge::BearerAuth`: the tenant from a verified bearer JWT (HS256, RS256, ES256; `jsonwebtoken`, RustCrypto backend) |
//! | `ratelimit` | `tenant_core::ratelimit::TenantRateLimitLayer`: a per-tenant request rate limit keyed by the resolved tenant (`429 RATE_LIMITED` with `Retry-After`), with `governor` |
//! | `client` | `tenant_core::client::PropagateContextLayer`: outgoing requests carry the current context's headers, and optionally the incoming bearer token |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod ctx;
mod error;
mod id;
mod key;
mod log;
mod principal;
mod resolve;
mod scope;
mod validator;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "edge")]
pub mod edge;
#[cfg(feature = "serde")]
pub mod envelope;
#[cfg(any(feature = "tower", feature = "client"))]
mod forward;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
#[cfg(any(feature = "tower", feature = "axum"))]
mod response;

#[doc(hidden)]
pub mod __private;

pub use ctx::{
    AgentState, CollectionState, ContextState, ConversationState, Ctx, HasAgent, HasCollection,
    HasConversation, IsValidated, NoAgent, NoCollection, NoConversation, Provenance, Unvalidated,
    Validated, WithAgent, WithCollection, WithConversation,
};
pub use error::{ContextError, Field};
#[cfg(any(feature = "tower", feature = "client"))]
pub use forward::incoming_bearer;
pub use id::{AgentId, CollectionId, ConversationId, IdError, TenantId, MAX_ID_LEN, RESERVED_IDS};
pub use key::TenantKey;
pub use log::{log_prefix, NO_CONTEXT_PREFIX};
pub use principal::{Principal, PrincipalSource};
pub use resolve::{resolve, resolve_unvalidated};
#[cfg(any(feature = "tower", feature = "axum"))]
pub use response::JSON_CONTENT_TYPE;
pub use scope::{
    current, spawn, spawn_blocking, with_current, Incoming, IncomingFuture, ScopeFuture,
};
pub use validator::{CheckFuture, Validator};

pub use tenant_macros::with_context;
