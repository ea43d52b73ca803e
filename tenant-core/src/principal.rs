//! [`Principal`]: who the caller is, as an authenticated source said.

use std::fmt;
use std::sync::Arc;

use crate::ctx::{Ctx, IsValidated, Provenance};
use crate::error::{ContextError, Field};

/// Where a [`Principal`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalSource {
    /// The tenant (and agent) claims of a verified bearer token.
    BearerToken,
    /// A context header set by a gateway that the service trusts
    /// ([`Resolver::trusted_header`](crate::edge::Resolver::trusted_header)).
    TrustedHeader,
    /// The request's host, or `X-Forwarded-Host` from a trusted proxy.
    Host,
    /// An authorized or trusted context that work is done on behalf of
    /// ([`Incoming::on_behalf_of`](crate::Incoming::on_behalf_of)): a worker's
    /// event, an in-process call.
    Context,
}

impl PrincipalSource {
    /// The source in words, for error messages: `the bearer token`, ...
    pub fn label(self) -> &'static str {
        match self {
            PrincipalSource::BearerToken => "the bearer token",
            PrincipalSource::TrustedHeader => "the trusted tenant header",
            PrincipalSource::Host => "the host",
            PrincipalSource::Context => "the context this work is done for",
        }
    }
}

/// Who the caller is: the tenant an authenticated source fixed, and the
/// agent where the source carries one.
///
/// A principal is made only by `tenant_core` itself: by the edge
/// [`Resolver`](crate::edge::Resolver) from a verified token, a trusted
/// gateway header or a host, and by
/// [`Incoming::on_behalf_of`](crate::Incoming::on_behalf_of) from a context
/// that is already authorized or [trusted](Ctx::trust). Handler code can read
/// it ([`Incoming::principal`](crate::Incoming::principal)) but cannot make
/// one for another tenant.
///
/// What it decides:
///
/// * every other value that names a field (a `#[with_context]` binding, a
///   [`resolve`](crate::resolve) argument, an untrusted header, a path) must
///   agree with it, or the request is refused with `403 TENANT_MISMATCH` or
///   `403 AGENT_MISMATCH`;
/// * a context is [`Provenance::Authorized`] only when its tenant (and
///   agent) are the principal's *and* the application's
///   [`Validator`](crate::Validator) accepted it.
///
/// ```
/// use tenant_core::{Ctx, Incoming, PrincipalSource, Validated};
///
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
/// // A bare context is no principal...
/// assert!(Incoming::on_behalf_of(&ctx).principal().is_none());
/// // ...a trusted one is.
/// let job = ctx.trust("nightly export, enqueued by an authorized request");
/// let incoming = Incoming::on_behalf_of(&job);
/// let principal = incoming.principal().unwrap();
/// assert_eq!(principal.tenant(), "acme");
/// assert_eq!(principal.source(), PrincipalSource::Context);
/// # Ok::<(), tenant_core::ContextError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    tenant: Arc<str>,
    agent: Option<Arc<str>>,
    source: PrincipalSource,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("tenant", &self.tenant)
            .field("agent", &self.agent)
            .field("source", &self.source)
            .finish()
    }
}

impl Principal {
    /// Made by the edge resolver, from what it authenticated.
    #[cfg_attr(not(feature = "edge"), allow(dead_code))]
    pub(crate) fn authenticated(
        tenant: &str,
        agent: Option<&str>,
        source: PrincipalSource,
    ) -> Principal {
        Principal {
            tenant: Arc::from(tenant),
            agent: agent.map(Arc::from),
            source,
        }
    }

    /// The principal of a context that is authorized or trusted; `None`
    /// for an unchecked one.
    pub(crate) fn of<S: IsValidated>(ctx: &Ctx<S>) -> Option<Principal> {
        if matches!(ctx.provenance(), Provenance::Unchecked) {
            return None;
        }
        Some(Principal {
            tenant: ctx.tenant_id().shared(),
            agent: ctx.agent_id_opt().map(crate::AgentId::shared),
            source: PrincipalSource::Context,
        })
    }

    /// The tenant the caller authenticated for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The agent the caller authenticated as, where the source carries one.
    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    /// Where the principal came from.
    pub fn source(&self) -> PrincipalSource {
        self.source
    }

    /// The principal's value of `field`, if it fixes one.
    pub(crate) fn field(&self, field: Field) -> Option<&str> {
        match field {
            Field::Tenant => Some(&self.tenant),
            Field::Agent => self.agent.as_deref(),
            Field::Conversation | Field::Collection => None,
        }
    }

    /// Refuses `value` for `field` if the principal fixes another one.
    /// `what` names where the value came from, for the message.
    pub(crate) fn agrees(
        &self,
        field: Field,
        value: &str,
        what: &'static str,
    ) -> Result<(), ContextError> {
        match self.field(field) {
            Some(mine) if mine != value => {
                Err(ContextError::mismatch(field, what, self.source.label()))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a validated context whose tenant or agent is not the
    /// principal's.
    pub(crate) fn admits<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<(), ContextError> {
        self.agrees(
            Field::Tenant,
            ctx.tenant_id().as_str(),
            "the context asked for",
        )?;
        if let Some(agent) = ctx.agent_id_opt() {
            self.agrees(Field::Agent, agent.as_str(), "the context asked for")?;
        }
        Ok(())
    }
}
