//! Support for the code `#[with_context]` generates. Not a public API: names
//! here may change in any release.

pub use tracing;

use crate::ctx::{Ctx, IsValidated, Unvalidated, Validated};
use crate::error::{ContextError, Field};
use crate::scope::{current, Incoming};

/// Values a handler binds from its own parameters (`agent = agent_id`). They
/// take precedence over the enclosing and incoming contexts.
pub type Bindings<'a> = &'a [(Field, &'a str)];

fn incoming_raw() -> (Ctx<Unvalidated>, Option<Incoming>) {
    match Incoming::current() {
        Some(inc) => (inc.raw().clone(), Some(inc)),
        None => (Ctx::unvalidated(), None),
    }
}

fn apply(mut raw: Ctx<Unvalidated>, bindings: Bindings<'_>) -> Ctx<Unvalidated> {
    for (field, value) in bindings {
        raw = raw.with_field(*field, Some((*value).to_owned()));
    }
    raw
}

/// The validated context a handler in state `S` receives.
///
/// * Inside an enclosing validated context with the same tenant, that
///   context is reused; any field `S` requires that it lacks (or that the
///   handler binds) is taken from the bindings or the incoming context and
///   validated. The application's validator has run for that tenant already.
/// * Otherwise the incoming context (with the bindings applied) is validated,
///   including the application's validator.
pub async fn resolve<S: IsValidated>(bindings: Bindings<'_>) -> Result<Ctx<S>, ContextError> {
    let rebinds_tenant = bindings.iter().any(|(f, _)| *f == Field::Tenant);
    if let (Ok(outer), false) = (current(), rebinds_tenant) {
        let missing = |f: &Field| match f {
            Field::Tenant => false,
            Field::Agent => outer.agent_id_opt().is_none(),
            Field::Conversation => outer.conversation_id_opt().is_none(),
            Field::Collection => outer.collection_id_opt().is_none(),
        };
        let mut fill: Vec<Field> = S::REQUIRES.into_iter().flatten().filter(missing).collect();
        fill.extend(bindings.iter().map(|(f, _)| *f));
        if fill.is_empty() {
            return outer.require::<S>();
        }
        let (incoming, _) = incoming_raw();
        let mut raw = outer.to_unvalidated();
        for field in fill {
            let value = bindings
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| incoming.raw(field).map(str::to_owned));
            raw = raw.with_field(field, value);
        }
        return raw.validate::<S>();
    }
    let (raw, incoming) = incoming_raw();
    let raw = apply(raw, bindings);
    match incoming.as_ref().and_then(Incoming::validator) {
        Some(v) => raw.validate_with::<S>(&**v).await,
        None => raw.validate::<S>(),
    }
}

/// The raw context a handler with `validate_tenant = false` receives: the
/// enclosing validated context as raw values, else the incoming one.
pub fn resolve_unvalidated(bindings: Bindings<'_>) -> Ctx<Unvalidated> {
    let raw = match current() {
        Ok(outer) => outer.to_unvalidated(),
        Err(_) => incoming_raw().0,
    };
    apply(raw, bindings)
}

/// Puts `ctx` in scope around `fut`.
pub fn scope<S: IsValidated, F: std::future::Future>(
    ctx: &Ctx<S>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Ctx<Validated>, F> {
    ctx.scope(fut)
}
