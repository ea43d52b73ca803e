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

/// The validated context a handler needing state `S` receives: what
/// `#[with_context]` does at the top of every handler, for code that
/// resolves its context by hand (a handler written without the macro, a
/// middleware, a test).
///
/// `bindings` are values the code binds itself (the macro's
/// `agent = agent_id`); they take precedence over the contexts in scope.
///
/// * Inside an enclosing validated context ([`Ctx::scope`]), unless the
///   bindings name the tenant, that context is reused. A field `S` requires
///   that it lacks (or that is bound) is taken from the bindings or, only if
///   it names the same tenant, from the incoming context, and the result is
///   validated again (with the application's [`Validator`](crate::Validator)
///   when one is in scope). The tenant never changes this way.
/// * Otherwise the [incoming](Incoming) context (the raw values of the
///   request or message), with the bindings applied, is validated, with the
///   application's validator when one is in scope.
///
/// Fails with the [`ContextError`] the macro's handler would return: no
/// tenant, a field `S` needs and nobody supplied, an invalid id, or the
/// validator's refusal.
///
/// ```
/// use tenant_core::{Ctx, Field, Incoming, Validated, WithAgent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tenant_core::ContextError> {
/// let raw = Ctx::unvalidated().with_tenant("acme");
/// let ctx: Ctx<Validated<WithAgent>> = Incoming::new(raw)
///     .scope(tenant_core::resolve(&[(Field::Agent, "agent-7")]))
///     .await?;
/// assert_eq!(ctx.to_string(), "[t:acme a:agent-7]");
///
/// // Nothing in scope: there is no tenant.
/// let err = tenant_core::resolve::<Validated>(&[]).await.unwrap_err();
/// assert_eq!(err.code(), "TENANT_REQUIRED");
/// # Ok(()) }
/// ```
pub async fn resolve<S: IsValidated>(bindings: &[(Field, &str)]) -> Result<Ctx<S>, ContextError> {
    let rebinds_tenant = bindings.iter().any(|(f, _)| *f == Field::Tenant);
    if !rebinds_tenant {
        if let Ok(outer) = current() {
            if bindings.is_empty() {
                if let Ok(ctx) = outer.require::<S>() {
                    return Ok(ctx);
                }
            }
            return fill::<S>(&outer, bindings).await;
        }
    }
    let incoming = Incoming::current();
    let applied;
    let raw = match (&incoming, bindings.is_empty()) {
        (Some(inc), true) => inc.raw(),
        (inc, _) => {
            let base = inc
                .as_ref()
                .map_or_else(Ctx::unvalidated, |i| i.raw().clone());
            applied = apply(base, bindings);
            &applied
        }
    };
    match incoming.as_ref().and_then(Incoming::validator) {
        Some(v) => raw.validate_with::<S>(&**v).await,
        None => raw.validate::<S>(),
    }
}

/// The enclosing context plus the fields `S` requires that it lacks, and
/// the bound ones, validated together.
///
/// A missing field is taken from the incoming context only when that
/// context names the same tenant: an enclosing context for tenant B (a
/// deliberate `ctx_b.scope(..)`) must not pick up the agent of a request
/// made for tenant A. When a field is added, the application's validator
/// runs on the result, as it would have on the incoming context.
///
/// The tenant never changes here, so without a validator the result keeps
/// the enclosing context's [`Provenance`](crate::Provenance): a worker's
/// trusted context, put in scope, still opens transactions for a nested
/// handler that binds an agent.
async fn fill<S: IsValidated>(
    outer: &Ctx<Validated>,
    bindings: &[(Field, &str)],
) -> Result<Ctx<S>, ContextError> {
    let missing = |f: &Field| match f {
        Field::Tenant => false,
        Field::Agent => outer.agent_id_opt().is_none(),
        Field::Conversation => outer.conversation_id_opt().is_none(),
        Field::Collection => outer.collection_id_opt().is_none(),
    };
    let incoming = Incoming::current();
    let same_tenant = incoming
        .as_ref()
        .filter(|inc| inc.raw().raw_tenant() == Some(outer.tenant_id().as_str()));
    let mut raw = outer.to_unvalidated();
    let fields = S::REQUIRES
        .into_iter()
        .flatten()
        .filter(missing)
        .chain(bindings.iter().map(|(f, _)| *f));
    for field in fields {
        let value = bindings
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| same_tenant.and_then(|inc| inc.raw().raw(field).map(str::to_owned)));
        raw = raw.with_field(field, value);
    }
    match incoming.as_ref().and_then(Incoming::validator) {
        Some(v) => raw.validate_with::<S>(&**v).await,
        None => Ok(raw.validate::<S>()?.marked(outer.provenance())),
    }
}

/// The raw context a handler with `validate_tenant = false` receives: the
/// enclosing validated context as raw values, else the incoming one, with
/// `bindings` applied. Nothing is validated.
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
