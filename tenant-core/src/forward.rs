//! The bearer token of the request being served, for the client layer to
//! forward (a task-local, like the contexts of [`crate::scope`]).

use std::future::Future;
use std::sync::Arc;

use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static BEARER: Option<Arc<str>>;
}

/// The future of a request served with its (verified) bearer token in scope.
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) type BearerFuture<F> = TaskLocalFuture<Option<Arc<str>>, F>;

/// Runs `fut` with `token` as the incoming bearer token (`None`: there is
/// none, also for requests nested in one that had one).
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) fn scope<F: Future>(token: Option<Arc<str>>, fut: F) -> BearerFuture<F> {
    BEARER.scope(token, fut)
}

/// Runs `f` with `token` as the incoming bearer token.
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) fn sync_scope<R>(token: Option<Arc<str>>, f: impl FnOnce() -> R) -> R {
    BEARER.sync_scope(token, f)
}

/// The verified bearer token of the request being served: set by
/// [`ContextLayer`](crate::layer::ContextLayer) when its resolver verified
/// one, `None` elsewhere.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(tenant_core::incoming_bearer().is_none());
/// # });
/// ```
pub fn incoming_bearer() -> Option<Arc<str>> {
    BEARER.try_with(Option::clone).ok().flatten()
}
