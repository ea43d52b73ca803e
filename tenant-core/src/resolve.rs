//! The rules by which a handler gets its context, for `#[with_context]`
//! and for code written by hand: [`resolve`] and [`resolve_unvalidated`].

use crate::ctx::{Ctx, IsValidated, Unvalidated, Validated};
use crate::error::{ContextError, Field};
use crate::scope::{current, Incoming};

fn incoming_raw() -> Ctx<Unvalidated> {
    Incoming::current().map_or_else(Ctx::unvalidated, |inc| inc.raw().clone())
}

fn apply(mut raw: Ctx<Unvalidated>, bindings: &[(Field, &str)]) -> Ctx<Unvalidated> {
    for (field, value) in bindings {
        raw = raw.with_field(*field, Some((*value).to_owned()));
    }
    raw
}

/// Where a bound value came from, for the mismatch messages.
const BOUND: &str = "a value bound in code (a path or a `#[with_context]` binding)";

/// The validated context a handler needing state `S` receives: what
/// `#[with_context]` does at the top of every handler, for code that
/// resolves its context by hand (a handler written without the macro, a
/// middleware, a test).
///
/// `bindings` are values the code binds itself (the macro's
/// `agent = agent_id`, often from the URL). They never replace who the
/// caller is:
///
/// * A bound tenant must be the tenant already in force: the enclosing
///   validated context's if there is one, else the incoming context's (an
///   authenticated [`Principal`](crate::Principal), or the raw tenant of the
///   request). Otherwise it is [`ContextError::TenantMismatch`] (`403`).
/// * A bound agent must be the principal's agent where the principal
///   carries one ([`ContextError::AgentMismatch`], `403`); it may fill or
///   replace an agent that no authenticated source fixed.
///
/// Then:
///
/// * Inside an enclosing validated context ([`Ctx::scope`]) that context is
///   reused. A field `S` requires that it lacks (or that is bound) is taken
///   from the bindings or, only if it names the same tenant, from the
///   incoming context. The result keeps the enclosing context's
///   [`Provenance`](crate::Provenance): nothing here upgrades it. The
///   application's [`Validator`](crate::Validator), when one is in scope,
///   may still refuse the new fields.
/// * Otherwise the [incoming](Incoming) context, with the bindings applied,
///   is validated: it is [`Authorized`](crate::Provenance::Authorized) when
///   it is the principal's and the application's validator accepted it,
///   else [`Unchecked`](crate::Provenance::Unchecked).
///
/// Fails with the [`ContextError`] the macro's handler would return: no
/// tenant, a field `S` needs and nobody supplied, an invalid id, a bound
/// value that contradicts the caller, or the validator's refusal.
///
/// ```
/// use tenant_core::{Ctx, Field, Incoming, Validated, WithAgent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tenant_core::ContextError> {
/// let raw = Ctx::unvalidated().with_tenant("acme");
/// let ctx: Ctx<Validated<WithAgent>> = Incoming::new(raw.clone())
///     .scope(tenant_core::resolve(&[(Field::Agent, "agent-7")]))
///     .await?;
/// assert_eq!(ctx.to_string(), "[t:acme a:agent-7]");
///
/// // A request for acme cannot bind itself to globex.
/// let err = Incoming::new(raw)
///     .scope(tenant_core::resolve::<Validated>(&[(Field::Tenant, "globex")]))
///     .await
///     .unwrap_err();
/// assert_eq!(err.code(), "TENANT_MISMATCH");
///
/// // Nothing in scope: there is no tenant.
/// let err = tenant_core::resolve::<Validated>(&[]).await.unwrap_err();
/// assert_eq!(err.code(), "TENANT_REQUIRED");
/// # Ok(()) }
/// ```
pub async fn resolve<S: IsValidated>(bindings: &[(Field, &str)]) -> Result<Ctx<S>, ContextError> {
    let incoming = Incoming::current();
    if let Ok(outer) = current() {
        for (field, value) in bindings {
            if *field == Field::Tenant && *value != outer.tenant_id().as_str() {
                return Err(ContextError::mismatch(
                    Field::Tenant,
                    BOUND,
                    "the enclosing context",
                ));
            }
        }
        if bindings.iter().all(|(f, _)| *f == Field::Tenant) {
            if let Ok(ctx) = outer.require::<S>() {
                return Ok(ctx);
            }
        }
        return fill::<S>(&outer, bindings, incoming.as_ref()).await;
    }
    let Some(incoming) = incoming else {
        return apply(Ctx::unvalidated(), bindings).validate::<S>();
    };
    check_bindings(&incoming, bindings)?;
    if bindings.is_empty() {
        return incoming.validate::<S>().await;
    }
    let ctx = apply(incoming.raw().clone(), bindings).validate::<S>()?;
    incoming.judge(ctx).await
}

/// Refuses bindings that contradict the request: a tenant other than the
/// principal's (or, with no principal, the raw incoming tenant), an agent
/// other than the principal's.
fn check_bindings(incoming: &Incoming, bindings: &[(Field, &str)]) -> Result<(), ContextError> {
    for (field, value) in bindings {
        match incoming.principal() {
            Some(principal) => principal.agrees(*field, value, BOUND)?,
            None if *field == Field::Tenant => match incoming.raw().raw_tenant() {
                Some(sent) if sent != *value => {
                    return Err(ContextError::mismatch(
                        Field::Tenant,
                        BOUND,
                        "the request's tenant header (not authenticated: no authenticated source is configured)",
                    ))
                }
                _ => {}
            },
            None => {}
        }
    }
    Ok(())
}

/// The enclosing context plus the fields `S` requires that it lacks, and
/// the bound ones, validated together, with the enclosing context's
/// provenance.
///
/// A missing field is taken from the incoming context only when that
/// context names the same tenant: an enclosing context for tenant B (a
/// deliberate `ctx_b.scope(..)`) must not pick up the agent of a request
/// made for tenant A. A bound agent must be the principal's when the
/// principal is for this tenant and carries one.
async fn fill<S: IsValidated>(
    outer: &Ctx<Validated>,
    bindings: &[(Field, &str)],
    incoming: Option<&Incoming>,
) -> Result<Ctx<S>, ContextError> {
    let missing = |f: &Field| match f {
        Field::Tenant => false,
        Field::Agent => outer.agent_id_opt().is_none(),
        Field::Conversation => outer.conversation_id_opt().is_none(),
        Field::Collection => outer.collection_id_opt().is_none(),
    };
    let same_tenant =
        incoming.filter(|inc| inc.raw().raw_tenant() == Some(outer.tenant_id().as_str()));
    if let Some(principal) = incoming
        .and_then(Incoming::principal)
        .filter(|p| p.tenant() == outer.tenant_id().as_str())
    {
        for (field, value) in bindings {
            principal.agrees(*field, value, BOUND)?;
        }
    }
    let mut raw = outer.to_unvalidated();
    let fields = S::REQUIRES
        .into_iter()
        .flatten()
        .filter(missing)
        .chain(bindings.iter().map(|(f, _)| *f))
        .filter(|f| *f != Field::Tenant);
    for field in fields {
        let value = bindings
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| same_tenant.and_then(|inc| inc.raw().raw(field).map(str::to_owned)));
        raw = raw.with_field(field, value);
    }
    let ctx = raw.validate::<S>()?.marked(outer.provenance());
    if let Some(incoming) = same_tenant {
        incoming.recheck(&ctx).await?;
    }
    Ok(ctx)
}

/// The raw context a handler with `validate_tenant = false` receives: the
/// enclosing validated context as raw values, else the incoming one, with
/// `bindings` applied. Nothing is validated, and nothing validated from it
/// later is authorized by it.
///
/// ```
/// use tenant_core::{Ctx, Field};
///
/// let raw = tenant_core::resolve_unvalidated(&[(Field::Tenant, "acme")]);
/// assert_eq!(raw.raw_tenant(), Some("acme"));
/// ```
pub fn resolve_unvalidated(bindings: &[(Field, &str)]) -> Ctx<Unvalidated> {
    let raw = match current() {
        Ok(outer) => outer.to_unvalidated(),
        Err(_) => incoming_raw(),
    };
    apply(raw, bindings)
}
