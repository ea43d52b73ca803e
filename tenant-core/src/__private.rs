//! Support for the code `#[with_context]` generates. Not a public API: names
//! here may change in any release.

pub use tracing;

use crate::ctx::{
    AgentState, CollectionState, ConversationState, Ctx, IsValidated, NoAgent, NoCollection,
    NoConversation, Validated, WithAgent, WithCollection, WithConversation,
};
use crate::error::{ContextError, Field};

/// Values a handler binds from its own parameters (`agent = agent_id`). They
/// take precedence over the enclosing and incoming contexts.
pub type Bindings<'a> = &'a [(Field, &'a str)];

pub use crate::resolve::{resolve, resolve_unvalidated};

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
