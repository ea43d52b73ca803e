//! Support for the code `#[with_context]` generates. Not a public API: names
//! here may change in any release.

pub use tracing;

use crate::ctx::{
    AgentState, CollectionState, ConversationState, Ctx, IsValidated, NoAgent, NoCollection,
    NoConversation, Unvalidated, Validated, WithAgent, WithCollection, WithConversation,
};
use crate::error::{ContextError, Field};
use crate::scope::{current, Incoming};

/// Values a handler binds from its own parameters (`agent = agent_id`). They
/// take precedence over the enclosing and incoming contexts.
pub type Bindings<'a> = &'a [(Field, &'a str)];

fn incoming_raw() -> Ctx<Unvalidated> {
    Incoming::current().map_or_else(Ctx::unvalidated, |inc| inc.raw().clone())
}

fn apply(mut raw: Ctx<Unvalidated>, bindings: Bindings<'_>) -> Ctx<Unvalidated> {
    for (field, value) in bindings {
        raw = raw.with_field(*field, Some((*value).to_owned()));
    }
    raw
}

/// The validated context a handler in state `S` receives.
///
/// * Inside an enclosing validated context, unless the handler binds the
///   tenant, that context is reused; any field `S` requires that it lacks
///   (or that the handler binds) is taken from the bindings or, if it names
///   the same tenant, the incoming context, and validated (with the
///   application's validator when a field was added).
/// * Otherwise the incoming context (with the bindings applied) is validated,
///   including the application's validator.
///
/// Every handler call runs this, so the common paths clone nothing they do
/// not return: a nested call that needs no more fields is one reference
/// count, a handler without bindings validates the incoming context in
/// place.
pub async fn resolve<S: IsValidated>(bindings: Bindings<'_>) -> Result<Ctx<S>, ContextError> {
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
    bindings: Bindings<'_>,
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
/// enclosing validated context as raw values, else the incoming one.
pub fn resolve_unvalidated(bindings: Bindings<'_>) -> Ctx<Unvalidated> {
    let raw = match current() {
        Ok(outer) => outer.to_unvalidated(),
        Err(_) => incoming_raw(),
    };
    apply(raw, bindings)
}

/// Puts `ctx` in scope around `fut`.
pub fn scope<S: IsValidated, F: std::future::Future>(
    ctx: &Ctx<S>,
    fut: F,
) -> crate::scope::ScopeFuture<F> {
    ctx.scope(fut)
}

/// Whether any `tracing` subscriber may record an `INFO` span. Without one
/// the macro uses `Span::none()`: a disabled span that still carries
/// metadata costs tens of nanoseconds per call when `tracing`'s `log`
/// feature is on (sqlx turns it on), to mirror the span to `log`.
#[inline]
pub fn spans_enabled() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    tracing::Level::INFO <= STATIC_MAX_LEVEL && tracing::Level::INFO <= LevelFilter::current()
}

/// The text of a parameter bound with `agent = agent_id`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a context field: `#[with_context]` reads a bound parameter as text",
    label = "this parameter is bound to a context field",
    note = "bind a parameter whose type is `AsRef<str>`: `String`, `&str`, `AgentId`, or destructure an extractor such as `Path(agent_id): Path<String>`"
)]
pub trait BindingValue {
    /// The raw value, validated afterwards like a header.
    fn binding_value(&self) -> &str;
}

impl<T: AsRef<str> + ?Sized> BindingValue for T {
    #[inline]
    fn binding_value(&self) -> &str {
        self.as_ref()
    }
}

/// Reads a bound parameter without moving it: the body gets it afterwards.
#[inline]
pub fn binding<T: BindingValue + ?Sized>(value: &T) -> &str {
    value.binding_value()
}

/// An error type that a failed validation can be returned as.
#[diagnostic::on_unimplemented(
    message = "`#[with_context]` cannot return a `ContextError` as `{Self}`",
    label = "when validation fails, the function returns `Err(From::from(ContextError))` through this type",
    note = "add `impl From<tenant_core::ContextError> for {Self}`, mapping the error's `code()` and `http_status()` to your own error"
)]
pub trait ContextErrorInto {
    /// Converts the validation error.
    fn from_context_error(error: ContextError) -> Self;
}

impl<E: From<ContextError>> ContextErrorInto for E {
    #[inline]
    fn from_context_error(error: ContextError) -> Self {
        E::from(error)
    }
}

/// The function's return value when validation fails. The `Ok` type is
/// inferred from the return position, so `Result<impl Trait, E>` and
/// aliases such as `anyhow::Result<T>` work.
#[cold]
pub fn context_error<T, E: ContextErrorInto>(error: ContextError) -> Result<T, E> {
    Err(E::from_context_error(error))
}

/// The options' `agent` marker gives at least what the parameter's asks for.
#[diagnostic::on_unimplemented(
    message = "the context parameter guarantees an agent, which `#[with_context]` does not declare",
    label = "this context's state requires an agent",
    note = "add `agent` to the attribute, `#[with_context(tenant, agent)]`"
)]
pub trait CoversAgent<T> {}
impl CoversAgent<WithAgent> for WithAgent {}
impl CoversAgent<NoAgent> for WithAgent {}
impl CoversAgent<NoAgent> for NoAgent {}

/// The options' `conversation` marker gives at least what the parameter's asks for.
#[diagnostic::on_unimplemented(
    message = "the context parameter guarantees a conversation, which `#[with_context]` does not declare",
    label = "this context's state requires a conversation",
    note = "add `conversation` to the attribute, `#[with_context(tenant, conversation)]`"
)]
pub trait CoversConversation<T> {}
impl CoversConversation<WithConversation> for WithConversation {}
impl CoversConversation<NoConversation> for WithConversation {}
impl CoversConversation<NoConversation> for NoConversation {}

/// The options' `collection` marker gives at least what the parameter's asks for.
#[diagnostic::on_unimplemented(
    message = "the context parameter guarantees a collection, which `#[with_context]` does not declare",
    label = "this context's state requires a collection",
    note = "add `collection` to the attribute, `#[with_context(tenant, collection)]`"
)]
pub trait CoversCollection<T> {}
impl CoversCollection<WithCollection> for WithCollection {}
impl CoversCollection<NoCollection> for WithCollection {}
impl CoversCollection<NoCollection> for NoCollection {}

/// The resolved context as the type the parameter declares, which may
/// guarantee fewer fields than the attribute required.
#[diagnostic::on_unimplemented(
    message = "the context state `{Self}` does not guarantee every field of `{T}`",
    label = "not narrower than the context",
    note = "this is the macro's own helper: validate a context (`raw.validate()?`) instead"
)]
pub trait Narrow<T: IsValidated>: IsValidated {}

impl<A, C, L, A2, C2, L2> Narrow<Validated<A2, C2, L2>> for Validated<A, C, L>
where
    A: AgentState + CoversAgent<A2>,
    C: ConversationState + CoversConversation<C2>,
    L: CollectionState + CoversCollection<L2>,
    A2: AgentState,
    C2: ConversationState,
    L2: CollectionState,
{
}

/// The state of a `Ctx<S>` type, so the generated code can name the state
/// of the parameter's type (even through an alias) and let the compiler
/// check it against the options rather than infer it from them.
pub trait CtxType {
    /// `S`.
    type State: crate::ctx::ContextState;
}

impl<S: crate::ctx::ContextState> CtxType for Ctx<S> {
    type State = S;
}

/// See [`Narrow`]. One reference count.
#[inline]
pub fn narrow<S, T>(ctx: &Ctx<S>) -> Ctx<T>
where
    S: Narrow<T>,
    T: IsValidated,
{
    match ctx.require::<T>() {
        Ok(ctx) => ctx,
        // `S: Narrow<T>` means every field `T` requires, `S` guarantees.
        Err(_) => unreachable!("a context covers every field of a narrower state"),
    }
}
