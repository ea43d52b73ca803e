//! Logging: a `tracing` span for a context, and a prefix for other logs.

use crate::ctx::{Ctx, IsValidated};
use crate::scope::current;

/// What [`log_prefix`] returns outside any context scope.
pub const NO_CONTEXT_PREFIX: &str = "[t:-]";

impl<S: IsValidated> Ctx<S> {
    /// An `INFO` span named `tenant_context` with the field `tenant_id`, and
    /// `agent_id`, `conversation_id`, `collection_id` for each one the
    /// context carries (the others stay empty and are not shown).
    ///
    /// `#[with_context]` enters it around a handler body; enter it yourself
    /// around code that runs under a context you built by hand.
    ///
    /// ```
    /// use tenant_core::{Ctx, Validated};
    /// use tracing::Instrument;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
    /// let work = async { tracing::info!("visible with tenant_id=acme") };
    /// ctx.scope(work.instrument(ctx.span())).await;
    /// # });
    /// ```
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "tenant_context",
            tenant_id = self.tenant_id().as_str(),
            agent_id = tracing::field::Empty,
            conversation_id = tracing::field::Empty,
            collection_id = tracing::field::Empty,
        );
        if let Some(a) = self.agent_id_opt() {
            span.record("agent_id", a.as_str());
        }
        if let Some(c) = self.conversation_id_opt() {
            span.record("conversation_id", c.as_str());
        }
        if let Some(l) = self.collection_id_opt() {
            span.record("collection_id", l.as_str());
        }
        span
    }
}

/// The log prefix of the current context ([`current`](crate::current())), such as
/// `[t:acme a:agent-7]` (the `Display` of a validated [`Ctx`]), for logs
/// written outside `tracing`.
///
/// Outside any context scope it returns [`NO_CONTEXT_PREFIX`], `[t:-]`,
/// rather than an empty string, so a line logged without a tenant stands out
/// instead of looking like an unprefixed one.
///
/// ```
/// use tenant_core::{log_prefix, Ctx, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(log_prefix(), "[t:-]");
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7").validate().unwrap();
/// ctx.scope(async { assert_eq!(log_prefix(), "[t:acme a:agent-7]") }).await;
/// # });
/// ```
pub fn log_prefix() -> String {
    match current() {
        Ok(ctx) => ctx.to_string(),
        Err(_) => NO_CONTEXT_PREFIX.to_owned(),
    }
}
