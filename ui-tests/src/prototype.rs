//! A prototype of provenance in the types, kept to compare it with the
//! run-time mark (`docs/provenance.md`). Not part of the library.
//!
//! An [`Authorized`] witness wraps a context that the resolver and the
//! validator accepted; a [`StrictPool`] opens transactions for witnesses
//! only, and [`StrictSettings`] answers for witnesses only. The witness has
//! one constructor, which checks the run-time mark: the compiler refuses a
//! bare context where a witness is needed.

use tenant_core::{ContextError, Ctx, IsValidated};
use tenant_sqlx::{Begin, TenantPool};

/// A context that the caller's principal and the application's validator
/// authorized.
#[derive(Debug, Clone)]
pub struct Authorized<S: IsValidated>(Ctx<S>);

impl<S: IsValidated> Authorized<S> {
    /// The witness for `ctx`, if it is authorized or trusted.
    pub fn check(ctx: Ctx<S>) -> Result<Self, ContextError> {
        if ctx.is_authorized() {
            Ok(Authorized(ctx))
        } else {
            Err(ContextError::PrincipalRequired)
        }
    }

    /// The context.
    pub fn ctx(&self) -> &Ctx<S> {
        &self.0
    }
}

/// A pool whose `begin` takes only a witness.
#[derive(Debug, Clone)]
pub struct StrictPool(pub TenantPool);

impl StrictPool {
    /// Opens a transaction for an authorized context.
    pub fn begin<'c, S: IsValidated>(&self, ctx: &'c Authorized<S>) -> Begin<'c> {
        self.0.begin(&ctx.0)
    }
}

/// A settings cache that answers only for a witness.
#[derive(Debug, Default)]
pub struct StrictSettings;

impl StrictSettings {
    /// The settings of the witness's tenant.
    pub fn get<S: IsValidated>(&self, ctx: &Authorized<S>) -> String {
        ctx.ctx().tenant_id().to_string()
    }
}
