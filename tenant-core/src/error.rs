//! [`ContextError`]: why a context could not be had, with stable codes.

use std::borrow::Cow;
use std::fmt;

use crate::id::IdError;

/// One of the four fields a context can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The tenant (`X-Tenant-ID`, `app.current_tenant`).
    Tenant,
    /// The agent (`X-Agent-ID`, `app.current_agent`).
    Agent,
    /// The conversation (`X-Conversation-ID`, `app.current_conversation`).
    Conversation,
    /// The collection (`X-Collection-ID`, `app.current_collection`).
    Collection,
}

impl Field {
    /// All four fields, tenant first.
    pub const ALL: [Field; 4] = [
        Field::Tenant,
        Field::Agent,
        Field::Conversation,
        Field::Collection,
    ];

    /// The field's name as written in `#[with_context(...)]`: `tenant`, `agent`, ...
    pub fn name(self) -> &'static str {
        match self {
            Field::Tenant => "tenant",
            Field::Agent => "agent",
            Field::Conversation => "conversation",
            Field::Collection => "collection",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request or job has no usable context.
///
/// Every variant has a stable [`code`](Self::code) (for clients and
/// dashboards) and an [`http_status`](Self::http_status). Messages say what to
/// do. Values sent by the client are never echoed back verbatim; the
/// [`IdError`] says which rule failed and where.
///
/// ```
/// use tenant_core::{ContextError, Ctx};
///
/// let err = Ctx::unvalidated().validate::<tenant_core::Validated>().unwrap_err();
/// assert_eq!(err, ContextError::TenantRequired);
/// assert_eq!(err.code(), "TENANT_REQUIRED");
/// assert_eq!(err.http_status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// No tenant was sent.
    #[error("a tenant is required: send the `X-Tenant-ID` header")]
    TenantRequired,
    /// The tenant id breaks the identifier rules.
    #[error("the tenant id {}", InvalidId(Field::Tenant, .0))]
    TenantInvalid(#[source] IdError),
    /// The tenant is well formed but this caller may not act for it
    /// (unknown, inactive, or not the tenant of the authenticated caller).
    #[error("access to this tenant is forbidden: {reason}")]
    TenantForbidden {
        /// Why, in words safe to show the caller.
        reason: Cow<'static, str>,
    },
    /// The tenant is well formed but no such tenant is registered.
    #[error("this tenant is not registered")]
    TenantUnknown,
    /// The tenant is registered but suspended: it may not act now.
    #[error("this tenant is suspended")]
    TenantSuspended,
    /// Two sources named different tenants for one request, such as an
    /// `X-Tenant-ID` header and the tenant claim of the bearer token.
    #[error("the tenant sent in {first} differs from the tenant in {second}")]
    TenantMismatch {
        /// The first source, such as `the X-Tenant-ID header`.
        first: Cow<'static, str>,
        /// The second source, such as `the bearer token`.
        second: Cow<'static, str>,
    },
    /// Two sources named different agents for one request: a value bound
    /// in code (a path, a `#[with_context]` binding) and the agent the
    /// caller authenticated as.
    #[error("the agent named by {first} differs from the agent in {second}")]
    AgentMismatch {
        /// Where the refused value came from.
        first: Cow<'static, str>,
        /// The source that fixed the agent, such as `the bearer token`.
        second: Cow<'static, str>,
    },
    /// Code asked to authorize a context where no authenticated caller is
    /// in scope, so nothing says the caller may act for the tenant.
    #[error("no authenticated caller is in scope to authorize this context: resolve the request with an authenticated source (`ContextLayer::resolver` with a bearer token, a trusted gateway header or a host), run the work inside `Incoming::on_behalf_of(&authorized_ctx)`, or mark the context with `ctx.trust(reason)`")]
    PrincipalRequired,
    /// The handler requires an agent and none was sent.
    #[error("an agent is required: send the `X-Agent-ID` header")]
    AgentRequired,
    /// The agent id breaks the identifier rules.
    #[error("the agent id {}", InvalidId(Field::Agent, .0))]
    AgentInvalid(#[source] IdError),
    /// The handler requires a conversation and none was sent.
    #[error("a conversation is required: send the `X-Conversation-ID` header")]
    ConversationRequired,
    /// The conversation id breaks the identifier rules.
    #[error("the conversation id {}", InvalidId(Field::Conversation, .0))]
    ConversationInvalid(#[source] IdError),
    /// The handler requires a collection and none was sent.
    #[error("a collection is required: send the `X-Collection-ID` header")]
    CollectionRequired,
    /// The collection id breaks the identifier rules.
    #[error("the collection id {}", InvalidId(Field::Collection, .0))]
    CollectionInvalid(#[source] IdError),
    /// A context header was sent more than once, or with comma-joined values.
    #[error("the `{header}` header must be sent exactly once, with a single value")]
    HeaderRepeated {
        /// The header's name.
        header: Cow<'static, str>,
    },
    /// A context header is not visible ASCII text.
    #[error("the `{header}` header is not valid text")]
    HeaderNotText {
        /// The header's name.
        header: Cow<'static, str>,
    },
    /// The caller is not authenticated, so no tenant can be trusted.
    #[error("authentication is required: {reason}")]
    Unauthenticated {
        /// Why, in words safe to show the caller.
        reason: Cow<'static, str>,
    },
    /// Code asked for the current context outside any context scope. This is
    /// a bug in the service, not in the request.
    #[error("no tenant context is in scope here: run this code inside `#[with_context]`, `Ctx::scope` or `tenant_core::spawn`")]
    NoContext,
}

/// An [`IdError`] as said of one field: a reserved word "never names a
/// real agent" for an agent id, "a real tenant" for a tenant id.
struct InvalidId<'a>(Field, &'a IdError);

impl fmt::Display for InvalidId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            IdError::Reserved { word } => write!(
                f,
                "is the reserved word `{word}`, which never names a real {}",
                self.0
            ),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl ContextError {
    /// A stable, machine-readable code, such as `TENANT_REQUIRED`.
    pub fn code(&self) -> &'static str {
        match self {
            ContextError::TenantRequired => "TENANT_REQUIRED",
            ContextError::TenantInvalid(_) => "TENANT_INVALID",
            ContextError::TenantForbidden { .. } => "TENANT_FORBIDDEN",
            ContextError::TenantUnknown => "TENANT_UNKNOWN",
            ContextError::TenantSuspended => "TENANT_SUSPENDED",
            ContextError::TenantMismatch { .. } => "TENANT_MISMATCH",
            ContextError::AgentMismatch { .. } => "AGENT_MISMATCH",
            ContextError::PrincipalRequired => "PRINCIPAL_REQUIRED",
            ContextError::AgentRequired => "AGENT_REQUIRED",
            ContextError::AgentInvalid(_) => "AGENT_INVALID",
            ContextError::ConversationRequired => "CONVERSATION_REQUIRED",
            ContextError::ConversationInvalid(_) => "CONVERSATION_INVALID",
            ContextError::CollectionRequired => "COLLECTION_REQUIRED",
            ContextError::CollectionInvalid(_) => "COLLECTION_INVALID",
            ContextError::HeaderRepeated { .. } => "HEADER_REPEATED",
            ContextError::HeaderNotText { .. } => "HEADER_NOT_TEXT",
            ContextError::Unauthenticated { .. } => "UNAUTHENTICATED",
            ContextError::NoContext => "CONTEXT_MISSING",
        }
    }

    /// The HTTP status this error maps to: 400 for a missing or malformed
    /// context, 401 when unauthenticated, 403 when forbidden, 500 for
    /// [`NoContext`](Self::NoContext) (a server bug).
    pub fn http_status(&self) -> u16 {
        match self {
            ContextError::TenantForbidden { .. }
            | ContextError::TenantUnknown
            | ContextError::TenantSuspended
            | ContextError::TenantMismatch { .. }
            | ContextError::AgentMismatch { .. } => 403,
            ContextError::Unauthenticated { .. } | ContextError::PrincipalRequired => 401,
            ContextError::NoContext => 500,
            _ => 400,
        }
    }

    /// `TenantRequired`, `AgentRequired`, ... for `field`.
    pub fn required(field: Field) -> Self {
        match field {
            Field::Tenant => ContextError::TenantRequired,
            Field::Agent => ContextError::AgentRequired,
            Field::Conversation => ContextError::ConversationRequired,
            Field::Collection => ContextError::CollectionRequired,
        }
    }

    /// `TenantInvalid`, `AgentInvalid`, ... for `field`.
    pub fn invalid(field: Field, error: IdError) -> Self {
        match field {
            Field::Tenant => ContextError::TenantInvalid(error),
            Field::Agent => ContextError::AgentInvalid(error),
            Field::Conversation => ContextError::ConversationInvalid(error),
            Field::Collection => ContextError::CollectionInvalid(error),
        }
    }

    /// [`TenantMismatch`](Self::TenantMismatch) for the tenant,
    /// [`AgentMismatch`](Self::AgentMismatch) for any other field (a
    /// principal fixes the tenant and the agent only).
    pub(crate) fn mismatch(field: Field, first: &'static str, second: &'static str) -> Self {
        match field {
            Field::Tenant => ContextError::TenantMismatch {
                first: first.into(),
                second: second.into(),
            },
            _ => ContextError::AgentMismatch {
                first: first.into(),
                second: second.into(),
            },
        }
    }

    /// A [`TenantForbidden`](Self::TenantForbidden) error, for validators.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        ContextError::TenantForbidden {
            reason: reason.into(),
        }
    }
}
