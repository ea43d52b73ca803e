//! The `#[with_context(...)]` attribute. Use it through
//! `tenant_core::with_context`; its documentation is below, on the macro.
//!
//! The expansion is a pipeline of small steps: `attr` reads the options,
//! `ast` reads the function, `valid` checks the two against each other
//! (errors are collected in a `ctxt::Ctxt`, so one compile shows them all),
//! `expand` writes the new function, and `fallback` writes what is emitted
//! next to the errors when something is wrong.
#![deny(missing_docs)]

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod suggest;
mod valid;

use proc_macro::TokenStream;

/// Gives an `async fn` a validated tenant context.
///
/// ```
/// use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};
///
/// #[with_context(tenant, agent)]
/// async fn answer(question: &str, ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
///     // Both are guaranteed: no `Option`, no check left to forget.
///     Ok(format!("{} for {}: {question}", ctx.agent_id(), ctx.tenant_id()))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // Callers do not pass the context. It comes from the incoming context,
/// // which the HTTP layer (`tenant_core::layer::ContextLayer`) or a worker sets:
/// let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
/// let out = Incoming::new(raw).scope(answer("why?")).await?;
/// assert_eq!(out, "agent-7 for acme: why?");
///
/// // Without a tenant the body never runs; the error is the function's.
/// assert_eq!(answer("why?").await.unwrap_err().code(), "TENANT_REQUIRED");
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
///
/// # Options
///
/// | option | effect |
/// | --- | --- |
/// | `tenant` | The tenant is required and validated. Always the case unless `validate_tenant = false`; writing it is allowed. |
/// | `agent`, `conversation`, `collection` | That field is required too: the body's context guarantees it (`WithAgent`, `WithConversation`, `WithCollection`) and a request without it fails with `AGENT_REQUIRED`, ... |
/// | `agent = agent_id` (any field) | The field is taken from the parameter `agent_id` instead of the incoming context, and still validated. The parameter stays a parameter (an axum `Path(agent_id): Path<String>` works) and must be text (`AsRef<str>`). |
/// | `validate_tenant = false` | A public endpoint: nothing is validated, the body gets `Ctx<Unvalidated>` (the raw values), which cannot open a tenant transaction, and the function may return any type. |
/// | `crate = "path"` | Where `tenant_core` is, for a crate that re-exports it. Default `::tenant_core`. |
///
/// # What the function receives
///
/// The context parameter is the one whose type is `Ctx<..>`. It may have
/// any name and sit anywhere in the list, or be left out (the body still
/// runs validated and in scope). It is removed from the signature: callers,
/// an axum router included, never pass it. Its type must fit the options:
///
/// | options | parameter |
/// | --- | --- |
/// | `tenant` | `Ctx` (= `Ctx<Validated>`) |
/// | `tenant, agent` | `Ctx<Validated<WithAgent>>` |
/// | `tenant, agent, conversation` | `Ctx<Validated<WithAgent, WithConversation>>` |
/// | `tenant, collection` | `Ctx<Validated<NoAgent, NoConversation, WithCollection>>` |
/// | `validate_tenant = false` | `Ctx<Unvalidated>` |
///
/// A parameter may guarantee less than the options require, never more.
/// A context type behind an alias (`type AgentCtx = Ctx<..>`) is not
/// recognisable by name: mark that parameter `#[ctx] ctx: AgentCtx`.
///
/// # Where the values come from
///
/// 1. Inside an enclosing validated context (an annotated helper called from
///    an annotated handler), that context is reused; a field the helper
///    requires and the enclosing context lacks is taken from the incoming
///    context and validated.
/// 2. Otherwise the incoming context (set by `ContextLayer` from the
///    `X-Tenant-ID`, `X-Agent-ID`, ... headers, or by a worker from a message
///    envelope) is validated, including the application's `Validator`.
///
/// Bound parameters take precedence over both.
///
/// # What runs around the body
///
/// * A failed validation returns `Err(From::from(context_error))`, so the
///   return type must be a `Result<T, E>` (or an alias such as
///   `anyhow::Result<T>`) with `E: From<ContextError>`. `ContextError`
///   itself is an axum response (feature `axum`): 400 with a JSON body
///   `{"error":{"code":"TENANT_REQUIRED",...}}`.
/// * The body runs inside the context's task-local scope
///   (`tenant_core::current()` returns it; the enclosing one is back after
///   the call, on error and on panic) and inside an `INFO` span named after
///   the function with the fields `tenant_id`, `agent_id`,
///   `conversation_id`, `collection_id` (those present).
/// * The future is `Send` when the body's is, so an annotated function is an
///   axum handler.
///
/// ```
/// use axum::extract::Path;
/// use axum::routing::get;
/// use axum::Router;
/// use tenant_core::layer::ContextLayer;
/// use tenant_core::{with_context, ContextError, Ctx, Unvalidated, Validated, WithAgent};
///
/// // The agent comes from the URL, and is validated like a header.
/// #[with_context(tenant, agent = agent_id)]
/// async fn agent_status(
///     Path(agent_id): Path<String>,
///     ctx: Ctx<Validated<WithAgent>>,
/// ) -> Result<String, ContextError> {
///     Ok(format!("{agent_id} of {} is up", ctx.tenant_id()))
/// }
///
/// #[with_context(validate_tenant = false)]
/// async fn landing(ctx: Ctx<Unvalidated>) -> &'static str {
///     if ctx.raw_tenant().is_some() { "welcome back" } else { "welcome" }
/// }
///
/// let app: Router = Router::new()
///     .route("/agents/{agent_id}", get(agent_status))
///     .route("/", get(landing))
///     .layer(ContextLayer::new());
/// # let _ = app;
/// ```
///
/// # Mistakes it refuses to compile
///
/// A function that is not `async`; an unknown option (with a "did you mean"
/// hint) or one given twice; `validate_tenant` with something other than a
/// `bool`; a parameter type that contradicts the options (a validated one
/// with `validate_tenant = false`, one that requires a field the options do
/// not declare, two context parameters, `&Ctx`); a binding to a parameter
/// that does not exist; a return type that cannot carry the error. The
/// errors point at the offending token, and the function is still emitted,
/// so its body and callers cause no follow-on errors. Asking a context for a
/// field it does not guarantee does not compile either:
///
/// ```compile_fail
/// use tenant_core::{with_context, ContextError, Ctx};
///
/// #[with_context(tenant)]
/// async fn query(ctx: Ctx) -> Result<String, ContextError> {
///     Ok(ctx.agent_id().to_string()) // error: this context does not guarantee an agent
/// }
/// ```
#[proc_macro_attribute]
pub fn with_context(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::with_context(args.into(), item.into()).into()
}
