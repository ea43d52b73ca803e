//! Task-local propagation of the context.
//!
//! Two scopes, both `tokio::task_local!`:
//!
//! * the **current validated context**, set by [`Ctx::scope`] (and by
//!   `#[with_context]` around a handler body), read with [`current`];
//! * the **incoming raw context**, set by an HTTP layer or a worker with
//!   [`Incoming::scope`], which `#[with_context]` validates.
//!
//! A scope is restored when its future completes, errors, panics or is
//! dropped. A plain `tokio::spawn` does not inherit it; [`spawn`],
//! [`spawn_blocking`], [`Ctx::spawn`] and [`Ctx::spawn_blocking`] carry it on
//! purpose.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::task::futures::TaskLocalFuture;
use tokio::task::JoinHandle;

use crate::ctx::{Ctx, IsValidated, Provenance, Unvalidated, Validated};
use crate::error::ContextError;
use crate::principal::Principal;
use crate::validator::Validator;

/// The future of [`Ctx::scope`]: `fut` with a validated context in scope.
pub type ScopeFuture<F> = TaskLocalFuture<Option<Ctx<Validated>>, F>;

/// The future of [`Incoming::scope`]: `fut` with an incoming context in
/// scope and no current validated context.
pub type IncomingFuture<F> = TaskLocalFuture<Incoming, ScopeFuture<F>>;

tokio::task_local! {
    // `None` inside an `Incoming` scope: a new request or message starts
    // without the validated context of whatever code made it.
    static CURRENT: Option<Ctx<Validated>>;
    static INCOMING: Incoming;
}

/// The current validated context, or [`ContextError::NoContext`] outside any
/// scope. Never a default tenant.
///
/// ```
/// use tenant_core::{current, ContextError, Ctx, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(current().unwrap_err(), ContextError::NoContext);
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
/// ctx.scope(async {
///     assert_eq!(current().unwrap().tenant_id().as_str(), "acme");
/// }).await;
/// assert!(current().is_err());
/// # });
/// ```
pub fn current() -> Result<Ctx<Validated>, ContextError> {
    CURRENT
        .try_with(Option::clone)
        .ok()
        .flatten()
        .ok_or(ContextError::NoContext)
}

/// Calls `f` with the current validated context (`None` outside any scope,
/// and inside an [`Incoming`] scope before validation), without cloning it.
///
/// This is the cheap check a database layer makes on every statement: a
/// transaction opened for one tenant refuses to run inside another tenant's
/// scope.
///
/// ```
/// use tenant_core::{with_current, Ctx, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(with_current(|c| c.is_none()));
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
/// ctx.scope(async {
///     assert!(with_current(|c| c.is_some_and(|c| c.tenant_id().as_str() == "acme")));
/// }).await;
/// # });
/// ```
pub fn with_current<R>(f: impl FnOnce(Option<&Ctx<Validated>>) -> R) -> R {
    let mut f = Some(f);
    let inside = CURRENT.try_with(|current| f.take().map(|f| f(current.as_ref())));
    match (inside, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(None),
        // `f` was taken and ran: its result is in `inside`.
        (_, None) => unreachable!("with_current: the closure ran but returned nothing"),
    }
}

/// Spawns `fut` on the tokio runtime inside the current validated context.
/// Fails with [`ContextError::NoContext`] outside any scope, so a background
/// task never starts without a tenant.
pub fn spawn<F>(fut: F) -> Result<JoinHandle<F::Output>, ContextError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(current()?.spawn(fut))
}

/// Runs `f` on tokio's blocking pool inside the current validated context.
/// Fails with [`ContextError::NoContext`] outside any scope.
pub fn spawn_blocking<F, R>(f: F) -> Result<JoinHandle<R>, ContextError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Ok(current()?.spawn_blocking(f))
}

impl<S: IsValidated> Ctx<S> {
    /// Runs `fut` with this context as the current one. The outer context (or
    /// none) is back when the future completes, panics or is dropped.
    pub fn scope<F: Future>(&self, fut: F) -> ScopeFuture<F> {
        CURRENT.scope(Some(self.erase()), fut)
    }

    /// Runs `f` synchronously with this context as the current one.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(Some(self.erase()), f)
    }

    /// Spawns `fut` on the tokio runtime with this context as its current one.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.scope(fut))
    }

    /// Runs `f` on tokio's blocking pool with this context as its current one.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let ctx = self.erase();
        tokio::task::spawn_blocking(move || ctx.sync_scope(f))
    }
}

/// The raw context that arrived with a request or a message, who sent it
/// (the [`Principal`], when an authenticated source said), and the
/// application's [`Validator`], for `#[with_context]` to validate.
///
/// An HTTP layer or a worker puts it in scope; handlers never read it
/// directly.
///
/// ```
/// use tenant_core::{current, Ctx, Incoming, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme"));
/// incoming.scope(async {
///     let raw = Incoming::current().unwrap();
///     let ctx: Ctx<Validated> = raw.raw().validate().unwrap();
///     assert_eq!(ctx.tenant_id().as_str(), "acme");
/// }).await;
/// # });
/// ```
#[derive(Clone)]
pub struct Incoming {
    raw: Ctx<Unvalidated>,
    validator: Option<Arc<dyn Validator>>,
    principal: Option<Principal>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("raw", &self.raw)
            .field("principal", &self.principal)
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

impl Incoming {
    /// What arrived, with no authenticated caller and no application check.
    /// Contexts validated from it are [`Provenance::Unchecked`].
    pub fn new(raw: Ctx<Unvalidated>) -> Self {
        Incoming {
            raw,
            validator: None,
            principal: None,
        }
    }

    /// Work done on behalf of `ctx`: its values are the raw context and, if
    /// it is authorized or [trusted](Ctx::trust), it is the [`Principal`]
    /// (an unchecked context gives none). This is how a worker runs a
    /// `#[with_context]` handler for an event it has verified, or how code
    /// makes an in-process call for a context it holds.
    ///
    /// ```
    /// use tenant_core::{Ctx, Incoming, Provenance, Validated};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let job: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
    /// let job = job.trust("event read from acme's outbox");
    /// let allow = |_: Ctx<Validated>| async { Ok(()) };
    /// let ctx: Ctx<Validated> = Incoming::on_behalf_of(&job)
    ///     .with_validator(std::sync::Arc::new(allow))
    ///     .scope(tenant_core::resolve(&[]))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(ctx.provenance(), Provenance::Authorized);
    /// # });
    /// ```
    pub fn on_behalf_of<S: IsValidated>(ctx: &Ctx<S>) -> Self {
        Incoming {
            raw: ctx.to_unvalidated(),
            validator: None,
            principal: Principal::of(ctx),
        }
    }

    /// What an authenticated source resolved: the raw context and who the
    /// caller is.
    #[cfg_attr(not(feature = "edge"), allow(dead_code))]
    pub(crate) fn authenticated(raw: Ctx<Unvalidated>, principal: Option<Principal>) -> Self {
        Incoming {
            raw,
            validator: None,
            principal,
        }
    }

    /// Adds the application's check, run when a handler validates this. The
    /// check can refuse a context; it authorizes one only for the
    /// [`Principal`].
    pub fn with_validator(mut self, validator: Arc<dyn Validator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// The raw context.
    pub fn raw(&self) -> &Ctx<Unvalidated> {
        &self.raw
    }

    /// Who the caller is, if an authenticated source said.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Whether the application gave a check. The check itself is not
    /// reachable from here: handler code cannot borrow it to authorize a
    /// context of its own making.
    pub fn has_validator(&self) -> bool {
        self.validator.is_some()
    }

    /// Runs `fut` with this as the incoming context. This is a request (or
    /// message) boundary: inside it there is no current validated context,
    /// even if the caller had one, so an in-process request for tenant B
    /// made from a handler of tenant A is validated from its own headers.
    pub fn scope<F: Future>(self, fut: F) -> IncomingFuture<F> {
        INCOMING.scope(self, CURRENT.scope(None, fut))
    }

    /// Runs `f` synchronously with this as the incoming context (for the
    /// synchronous part of a `tower::Service::call`).
    ///
    /// ```
    /// use tenant_core::{Ctx, Incoming};
    /// let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme"));
    /// let seen = incoming.sync_scope(|| Incoming::current().is_some());
    /// assert!(seen);
    /// ```
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        INCOMING.sync_scope(self.clone(), || CURRENT.sync_scope(None, f))
    }

    /// The incoming context in scope, if any.
    pub fn current() -> Option<Incoming> {
        INCOMING.try_with(Incoming::clone).ok()
    }

    /// The principal in scope, if any.
    pub(crate) fn current_principal() -> Option<Principal> {
        INCOMING.try_with(|i| i.principal.clone()).ok().flatten()
    }

    /// Validates the raw context into state `S`, running the validator if
    /// there is one. The result is [`Provenance::Authorized`] when the
    /// validator accepted it and it is the [`Principal`]'s.
    pub async fn validate<S: IsValidated>(&self) -> Result<Ctx<S>, ContextError> {
        let ctx = self.raw.validate::<S>()?;
        self.judge(ctx).await
    }

    /// The provenance rule, in one place: a context that is not the
    /// principal's is refused; the validator may refuse any context; only
    /// the principal's context, accepted by the validator, is authorized.
    pub(crate) async fn judge<S: IsValidated>(&self, ctx: Ctx<S>) -> Result<Ctx<S>, ContextError> {
        if let Some(principal) = &self.principal {
            principal.admits(&ctx)?;
        }
        let Some(validator) = &self.validator else {
            return Ok(ctx);
        };
        validator.check(ctx.erase()).await?;
        Ok(match self.principal {
            Some(_) => ctx.marked(Provenance::Authorized),
            None => ctx,
        })
    }

    /// Runs the validator to refuse, never to authorize: for a context whose
    /// provenance is already decided.
    pub(crate) async fn recheck<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<(), ContextError> {
        match &self.validator {
            Some(validator) => validator.check(ctx.erase()).await,
            None => Ok(()),
        }
    }
}
