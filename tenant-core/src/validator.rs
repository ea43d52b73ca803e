//! The application's own check, run after the identifier rules.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::ctx::{Ctx, Validated};
use crate::error::ContextError;

/// The future a [`Validator`] returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ContextError>> + Send + 'a>>;

/// An asynchronous check the application supplies, run on a context that has
/// passed the identifier rules: the tenant exists and is active, the
/// `X-Tenant-ID` header matches the tenant of an authenticated claim, ...
///
/// Any `Fn(Ctx<Validated>) -> impl Future<Output = Result<(), ContextError>>`
/// is a validator:
///
/// ```
/// use tenant_core::{ContextError, Ctx, Validated, Validator};
///
/// fn active_tenants() -> impl Validator {
///     |ctx: Ctx<Validated>| async move {
///         match ctx.tenant_id().as_str() {
///             "acme" | "globex" => Ok(()),
///             _ => Err(ContextError::forbidden("this tenant is not active")),
///         }
///     }
/// }
/// # let _ = active_tenants();
/// ```
pub trait Validator: Send + Sync + 'static {
    /// Accepts the context, or says why not (typically
    /// [`ContextError::TenantForbidden`] or [`ContextError::Unauthenticated`]).
    fn check(&self, ctx: Ctx<Validated>) -> CheckFuture<'_>;
}

impl<F, Fut> Validator for F
where
    F: Fn(Ctx<Validated>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ContextError>> + Send + 'static,
{
    fn check(&self, ctx: Ctx<Validated>) -> CheckFuture<'_> {
        Box::pin(self(ctx))
    }
}

impl fmt::Debug for dyn Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Validator")
    }
}
