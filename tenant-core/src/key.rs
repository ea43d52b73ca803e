//! Tenant-scoped keys for caches and other shared key spaces.

use std::fmt;

use crate::ctx::{Ctx, IsValidated};

/// A key that belongs to one tenant: `t<len>:<tenant>:<name>`, for example
/// `t4:acme:sessions`.
///
/// Tenant ids may contain `:`, so the tenant's length in bytes is written
/// first: `t3:a:b:c:x` can only mean tenant `a:b` (3 bytes) and name `c:x`,
/// never tenant `a` and name `b:c:x` (that is `t1:a:b:c:x`). Two keys are
/// equal only when both the tenant and the name are equal.
///
/// ```
/// use tenant_core::{Ctx, Validated};
///
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
/// let key = ctx.key("sessions");
/// assert_eq!(key.as_str(), "t4:acme:sessions");
/// assert_eq!(key.tenant(), "acme");
/// assert_eq!(key.name(), "sessions");
/// # Ok::<(), tenant_core::ContextError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantKey {
    key: String,
    tenant: std::ops::Range<usize>,
}

impl TenantKey {
    /// The whole key, to use with a cache or store.
    ///
    /// ```
    /// # use tenant_core::{Ctx, Validated};
    /// # let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// assert_eq!(ctx.key("x").as_str(), "t4:acme:x");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The tenant the key belongs to.
    ///
    /// ```
    /// # use tenant_core::{Ctx, Validated};
    /// # let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("a:b").validate()?;
    /// assert_eq!(ctx.key("c").tenant(), "a:b");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn tenant(&self) -> &str {
        &self.key[self.tenant.clone()]
    }

    /// The name the key was made from.
    ///
    /// ```
    /// # use tenant_core::{Ctx, Validated};
    /// # let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("a:b").validate()?;
    /// assert_eq!(ctx.key("c:d").name(), "c:d");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.key[self.tenant.end + 1..]
    }

    /// The key as an owned `String`.
    ///
    /// ```
    /// # use tenant_core::{Ctx, Validated};
    /// # let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// let s: String = ctx.key("x").into_string();
    /// assert_eq!(s, "t4:acme:x");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn into_string(self) -> String {
        self.key
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl AsRef<str> for TenantKey {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

impl From<TenantKey> for String {
    fn from(key: TenantKey) -> String {
        key.key
    }
}

impl<S: IsValidated> Ctx<S> {
    /// A key for `name` in this context's tenant: see [`TenantKey`].
    ///
    /// ```
    /// use tenant_core::{Ctx, Validated};
    ///
    /// let ab: Ctx<Validated> = Ctx::unvalidated().with_tenant("a:b").validate()?;
    /// let a: Ctx<Validated> = Ctx::unvalidated().with_tenant("a").validate()?;
    /// // Same text after the tenant, different tenants, different keys.
    /// assert_ne!(ab.key("c").as_str(), a.key("b:c").as_str());
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn key(&self, name: &str) -> TenantKey {
        let tenant = self.tenant_id().as_str();
        let mut key = format!("t{}:", tenant.len());
        let start = key.len();
        key.push_str(tenant);
        let end = key.len();
        key.push(':');
        key.push_str(name);
        TenantKey {
            key,
            tenant: start..end,
        }
    }
}
