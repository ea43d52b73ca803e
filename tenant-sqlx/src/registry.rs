//! The tenant registry (feature `registry`): which tenants exist, whether
//! they are active, and their settings.
//!
//! * [`RegistrySchema`] writes the SQL of the `tenants` table
//!   (`tenant_id`, `status` `active`/`suspended`, `settings jsonb`) with its
//!   Row-Level Security policy: inside a tenant transaction, the table shows
//!   that tenant's own row and nothing else. The application role may only
//!   read it; tenants are created, suspended and configured by an admin
//!   role.
//! * [`TenantRegistry`] is a ready [`Validator`]. It says whether a tenant
//!   exists and is active, never who the caller is: it authorizes a context
//!   only together with an authenticated [`Principal`](tenant_core::Principal)
//!   for the same tenant. An unknown tenant is
//!   refused with [`ContextError::TenantUnknown`] (`403 TENANT_UNKNOWN`), a
//!   suspended one with [`ContextError::TenantSuspended`]
//!   (`403 TENANT_SUSPENDED`). Answers are kept in a bounded cache with a
//!   time to live and explicit invalidation: a hit costs no database round
//!   trip.
//! * [`TenantSettings<T>`] reads a tenant's `settings` as a typed `T`, under
//!   Row-Level Security, cached the same way.
//!
//! # How the validator reads the registry before the context is authorized
//!
//! The lookup runs in an ordinary tenant transaction *for the tenant being
//! checked*, on the application's own [`TenantPool`]: the same role, the
//! same `SET LOCAL` (and, in hardened mode, the same signed proof), and the
//! same policy, so it can only ever see the row of the tenant it is asking
//! about. No `SECURITY DEFINER` function and no privileged role is
//! involved. This one read is the only transaction a pool built with
//! [`require_authorized(true)`](crate::TenantPoolBuilder::require_authorized)
//! opens for a context that is not authorized yet; it is internal to this
//! module and runs a fixed statement.
//!
//! Because the table has the pool's tenant column and a standard policy,
//! the start-up [audit](crate::audit) checks it like any tenant table and
//! finds nothing to refuse.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenant_core::{Ctx, Incoming, Validated, Validator};
//! use tenant_sqlx::registry::TenantRegistry;
//! use tenant_sqlx::TenantPool;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = TenantPool::builder()
//!     .require_authorized(true)
//!     .connect("postgres://app@localhost/app")
//!     .await?;
//! let registry = TenantRegistry::new(pool.clone());
//! // Give it to the HTTP layer (`ContextLayer::with_validator`, beside a
//! // resolver that authenticates the caller), or use it directly where an
//! // authenticated caller is in scope (here: a job trusted by its producer).
//! let validator: Arc<dyn Validator> = Arc::new(registry.clone());
//! let raw = Ctx::unvalidated().with_tenant("acme");
//! let job: Ctx = raw.validate()?.trust("export job, enqueued by an authorized request");
//! let ctx: Ctx<Validated> = Incoming::on_behalf_of(&job)
//!     .scope(raw.validate_with(&*validator))
//!     .await?;
//! let tx = pool.begin(&ctx).await?; // authorized: acme's caller, and the registry accepted it
//! # drop(tx);
//! # Ok(()) }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde::de::DeserializeOwned;
use tenant_core::{CheckFuture, ContextError, Ctx, IsValidated, TenantId, Validated, Validator};

use crate::rls::{quote_ident, RlsPolicy, TableName};
use crate::{Error, SettingNames, TenantPool};

/// The registry table's default name.
pub const DEFAULT_TABLE: &str = "tenants";

/// The policy name of the registry table.
pub const POLICY_NAME: &str = "tenant_registry_isolation";

/// How many tenants a cache holds by default.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// How long a cached answer is used by default before the registry is read
/// again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The SQL of the registry table, for a migration run by the table's owner.
///
/// ```
/// use tenant_sqlx::registry::RegistrySchema;
///
/// let sql = RegistrySchema::new().grant_to("app").sql();
/// assert!(sql.contains(r#"CREATE TABLE "tenants""#));
/// assert!(sql.contains(r#"ALTER TABLE "tenants" FORCE ROW LEVEL SECURITY"#));
/// // The application role reads its own row; it never writes the registry.
/// assert!(sql.contains(r#"GRANT SELECT ON "tenants" TO "app""#));
/// assert!(!sql.contains("UPDATE ON"));
/// ```
#[derive(Debug, Clone)]
pub struct RegistrySchema {
    table: TableName,
    column: String,
    settings: SettingNames,
    hardened: bool,
    grant_to: Vec<String>,
}

impl Default for RegistrySchema {
    fn default() -> Self {
        RegistrySchema::new()
    }
}

impl RegistrySchema {
    /// Table `tenants`, tenant column `tenant_id`, default setting names.
    pub fn new() -> Self {
        RegistrySchema {
            table: TableName::unqualified(DEFAULT_TABLE),
            column: "tenant_id".to_owned(),
            settings: SettingNames::default(),
            hardened: false,
            grant_to: Vec::new(),
        }
    }

    /// Another table name (then give the same to
    /// [`CacheOptions::table`], for the registry and the settings).
    pub fn table(mut self, table: impl Into<TableName>) -> Self {
        self.table = table.into();
        self
    }

    /// The tenant column: the one the pool's audit checks
    /// ([`TenantPoolBuilder::tenant_column`](crate::TenantPoolBuilder::tenant_column),
    /// default `tenant_id`).
    pub fn tenant_column(mut self, column: impl Into<String>) -> Self {
        self.column = column.into();
        self
    }

    /// The setting names the policy reads (the pool's).
    pub fn setting_names(mut self, settings: &SettingNames) -> Self {
        self.settings = settings.clone();
        self
    }

    /// Write the hardened-mode policy (see [`RlsPolicy::hardened`]).
    pub fn hardened(mut self, hardened: bool) -> Self {
        self.hardened = hardened;
        self
    }

    /// Let `role` read the table (`SELECT` only).
    pub fn grant_to(mut self, role: impl Into<String>) -> Self {
        self.grant_to.push(role.into());
        self
    }

    /// The statements, separated by `;`.
    pub fn sql(&self) -> String {
        let table = self.table.to_string();
        let column = quote_ident(&self.column);
        let mut sql = format!(
            "CREATE TABLE {table} (\n    \
                 {column} text PRIMARY KEY,\n    \
                 status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),\n    \
                 settings jsonb NOT NULL DEFAULT '{{}}'::jsonb CHECK (jsonb_typeof(settings) = 'object')\n\
             );\n"
        );
        // The policy without its grants: the application role must not
        // reactivate a suspended tenant or rewrite its own settings.
        let policy = RlsPolicy::new(self.table.clone(), self.column.clone())
            .setting_names(&self.settings)
            .policy_name(POLICY_NAME)
            .hardened(self.hardened);
        for statement in policy.statements() {
            sql.push_str(&statement);
            sql.push_str(";\n");
        }
        for role in &self.grant_to {
            sql.push_str(&format!(
                "GRANT SELECT ON {table} TO {};\n",
                quote_ident(role)
            ));
        }
        sql
    }
}

/// A tenant's status in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// The tenant may act.
    Active,
    /// The tenant is registered but may not act now.
    Suspended,
}

impl TenantStatus {
    /// As stored: `active` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    /// Anything but `active` reads as suspended: a status this crate does
    /// not know never lets a tenant in.
    fn parse(s: &str) -> TenantStatus {
        if s == "active" {
            TenantStatus::Active
        } else {
            TenantStatus::Suspended
        }
    }
}

/// Cache options shared by [`TenantRegistry`] and [`TenantSettings`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    table: TableName,
    column: String,
    capacity: u64,
    ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            table: TableName::unqualified(DEFAULT_TABLE),
            column: "tenant_id".to_owned(),
            capacity: DEFAULT_CAPACITY,
            ttl: DEFAULT_TTL,
        }
    }
}

impl CacheOptions {
    /// The defaults: table `tenants`, column `tenant_id`,
    /// [`DEFAULT_CAPACITY`] tenants, [`DEFAULT_TTL`].
    pub fn new() -> Self {
        Self::default()
    }
    /// The registry table (as given to [`RegistrySchema::table`]).
    pub fn table(mut self, table: impl Into<TableName>) -> Self {
        self.table = table.into();
        self
    }
    /// The tenant column (as given to [`RegistrySchema::tenant_column`]).
    pub fn tenant_column(mut self, column: impl Into<String>) -> Self {
        self.column = column.into();
        self
    }
    /// At most this many tenants are cached; the least useful are evicted.
    pub fn capacity(mut self, tenants: u64) -> Self {
        self.capacity = tenants;
        self
    }
    /// A cached answer is used for at most this long. A tenant suspended in
    /// the database is refused at the latest this long afterwards, unless
    /// the application calls `invalidate` first.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cache<V: Clone + Send + Sync + 'static>(&self) -> Cache<TenantId, V> {
        Cache::builder()
            .max_capacity(self.capacity)
            .time_to_live(self.ttl)
            .build()
    }

    fn select(&self, what: &str) -> String {
        let column = quote_ident(&self.column);
        // The `WHERE` is redundant with the policy, on purpose: were the
        // policy ever missing, a lookup still reads its own tenant's row.
        format!("SELECT {what} FROM {} WHERE {column} = $1", self.table)
    }
}

/// The tenant registry as a cached [`Validator`]: unknown tenants get
/// [`ContextError::TenantUnknown`], suspended ones
/// [`ContextError::TenantSuspended`], and a registry that cannot be read
/// refuses with [`ContextError::TenantForbidden`] (never lets a tenant in).
///
/// Both answers, "this status" and "no such tenant", are cached (so a flood
/// of unknown tenants does not reach the database more than once each per
/// time to live); call [`invalidate`](Self::invalidate) after creating,
/// suspending or reactivating a tenant. Cloning shares the cache.
#[derive(Clone)]
pub struct TenantRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    pool: TenantPool,
    cache: Cache<TenantId, Option<TenantStatus>>,
    select: String,
    lookups: AtomicU64,
}

impl fmt::Debug for TenantRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRegistry")
            .field("cached", &self.inner.cache.entry_count())
            .field("lookups", &self.lookups())
            .finish()
    }
}

impl TenantRegistry {
    /// A registry read through `pool`, with the default [`CacheOptions`].
    pub fn new(pool: TenantPool) -> Self {
        Self::with_options(pool, CacheOptions::default())
    }

    /// A registry read through `pool`, with `options`.
    ///
    /// ```no_run
    /// # async fn demo(pool: tenant_sqlx::TenantPool) {
    /// use std::time::Duration;
    /// use tenant_sqlx::registry::{CacheOptions, TenantRegistry};
    /// let registry = TenantRegistry::with_options(
    ///     pool,
    ///     CacheOptions::new().capacity(1_000).time_to_live(Duration::from_secs(5)),
    /// );
    /// # }
    /// ```
    pub fn with_options(pool: TenantPool, options: CacheOptions) -> Self {
        TenantRegistry {
            inner: Arc::new(RegistryInner {
                pool,
                cache: options.cache(),
                select: options.select("status"),
                lookups: AtomicU64::new(0),
            }),
        }
    }

    /// The tenant's status, or `None` if it is not registered: from the
    /// cache, else one transaction for that tenant. Refused with
    /// [`Error::TenantScopeMismatch`] inside another tenant's scope, hit or
    /// miss.
    pub async fn status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, Error> {
        // Another tenant's scope learns nothing about this tenant, cached
        // or not.
        crate::tx::check_scope(tenant)?;
        if let Some(hit) = self.inner.cache.get(tenant).await {
            return Ok(hit);
        }
        let status = self.read(tenant).await?;
        self.inner.cache.insert(tenant.clone(), status).await;
        Ok(status)
    }

    async fn read(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, Error> {
        let ctx: Ctx<Validated> = Ctx::unvalidated()
            .with_tenant(tenant.as_str())
            .validate()
            .map_err(|e| Error::UnsafeSettingValue {
                setting: "tenant".to_owned(),
                reason: e.code(),
            })?;
        // In the candidate tenant's own scope: the transaction is checked
        // against the current scope like any other.
        let lookup = async {
            let mut tx = self.inner.pool.begin_unchecked(&ctx).await?;
            self.inner.lookups.fetch_add(1, Ordering::Relaxed);
            let status: Option<String> = sqlx::query_scalar(&self.inner.select)
                .bind(tenant.as_str())
                .fetch_optional(&mut tx)
                .await?;
            tx.commit().await?;
            Ok::<_, Error>(status.as_deref().map(TenantStatus::parse))
        };
        ctx.scope(lookup).await
    }

    /// Forgets what the cache holds for `tenant`: the next check reads the
    /// registry.
    pub async fn invalidate(&self, tenant: &TenantId) {
        self.inner.cache.invalidate(tenant).await;
    }

    /// Forgets every cached answer.
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// How many tenants the cache holds, after finishing its pending
    /// evictions.
    pub async fn cached_entries(&self) -> u64 {
        self.inner.cache.run_pending_tasks().await;
        self.inner.cache.entry_count()
    }

    /// How many times the registry was read from the database (a
    /// transaction opened on a cache miss) since this registry was made.
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }
}

impl Validator for TenantRegistry {
    fn check(&self, ctx: Ctx<Validated>) -> CheckFuture<'_> {
        Box::pin(async move {
            match self.status(ctx.tenant_id()).await {
                Ok(Some(TenantStatus::Active)) => Ok(()),
                Ok(Some(TenantStatus::Suspended)) => Err(ContextError::TenantSuspended),
                Ok(None) => Err(ContextError::TenantUnknown),
                Err(e) => {
                    tracing::error!(
                        target: "tenant_sqlx::registry",
                        tenant_id = %ctx.tenant_id(),
                        error = %e,
                        code = e.code(),
                        "tenant registry lookup failed; refusing the tenant"
                    );
                    Err(ContextError::forbidden(
                        "the tenant registry could not be read; try again later",
                    ))
                }
            }
        })
    }
}

/// A tenant's `settings` from the registry, decoded as `T` and cached.
///
/// Read in a transaction for the context's tenant, on the application's
/// pool (so a pool that requires authorized contexts requires one here
/// too), where Row-Level Security shows that tenant's row only. Cloning
/// shares the cache.
///
/// ```no_run
/// # async fn demo(pool: tenant_sqlx::TenantPool, ctx: tenant_core::Ctx) -> Result<(), tenant_sqlx::Error> {
/// use tenant_sqlx::registry::TenantSettings;
///
/// #[derive(serde::Deserialize)]
/// struct Limits { max_agents: u32 }
///
/// let limits: TenantSettings<Limits> = TenantSettings::new(pool);
/// let mine = limits.get(&ctx).await?;
/// println!("{} agents at most", mine.max_agents);
/// # Ok(()) }
/// ```
pub struct TenantSettings<T> {
    inner: Arc<SettingsInner<T>>,
}

struct SettingsInner<T> {
    pool: TenantPool,
    cache: Cache<TenantId, Arc<T>>,
    select: String,
    lookups: AtomicU64,
    _decode: PhantomData<fn() -> T>,
}

impl<T> Clone for TenantSettings<T> {
    fn clone(&self) -> Self {
        TenantSettings {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for TenantSettings<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSettings")
            .field("type", &std::any::type_name::<T>())
            .field("cached", &self.inner.cache.entry_count())
            .field("lookups", &self.inner.lookups.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> TenantSettings<T> {
    /// Settings read through `pool`, with the default [`CacheOptions`].
    pub fn new(pool: TenantPool) -> Self {
        Self::with_options(pool, CacheOptions::default())
    }

    /// Settings read through `pool`, with `options`.
    pub fn with_options(pool: TenantPool, options: CacheOptions) -> Self {
        TenantSettings {
            inner: Arc::new(SettingsInner {
                pool,
                cache: options.cache(),
                select: options.select("settings::text"),
                lookups: AtomicU64::new(0),
                _decode: PhantomData,
            }),
        }
    }

    /// The settings of `ctx`'s tenant: from the cache, else one transaction
    /// for that tenant. A hit is refused exactly when the transaction would
    /// be: [`Error::ContextNotAuthorized`] for a context that is not
    /// authorized on a pool that requires it, [`Error::TenantScopeMismatch`]
    /// inside another tenant's scope. [`Error::TenantUnknown`] if the registry has no row
    /// for it, [`Error::TenantSettingsInvalid`] if its settings are not a
    /// `T` (neither is cached).
    pub async fn get<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<Arc<T>, Error> {
        // The same checks as `begin`, before the cache can answer.
        self.inner.pool.admits(ctx)?;
        let tenant = ctx.tenant_id();
        if let Some(hit) = self.inner.cache.get(tenant).await {
            return Ok(hit);
        }
        let mut tx = self.inner.pool.begin(ctx).await?;
        self.inner.lookups.fetch_add(1, Ordering::Relaxed);
        let text: Option<String> = sqlx::query_scalar(&self.inner.select)
            .bind(tenant.as_str())
            .fetch_optional(&mut tx)
            .await?;
        tx.commit().await?;
        let Some(text) = text else {
            return Err(Error::TenantUnknown {
                tenant: tenant.clone(),
            });
        };
        let value: T = serde_json::from_str(&text).map_err(|e| Error::TenantSettingsInvalid {
            tenant: tenant.clone(),
            reason: e.to_string(),
        })?;
        let value = Arc::new(value);
        self.inner
            .cache
            .insert(tenant.clone(), Arc::clone(&value))
            .await;
        Ok(value)
    }

    /// Forgets the cached settings of `tenant`.
    pub async fn invalidate(&self, tenant: &TenantId) {
        self.inner.cache.invalidate(tenant).await;
    }

    /// Forgets every cached settings value.
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// How many times settings were read from the database (a transaction
    /// opened on a cache miss).
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }
}
