//! Tenant transactions on PostgreSQL with Row-Level Security.
//!
//! * [`TenantPool`] wraps a `PgPool` nobody else can reach; its one
//!   operation, [`TenantPool::begin`], takes a validated
//!   [`Ctx`](tenant_core::Ctx) and gives a [`TenantTx`] in which the tenant
//!   (and the agent, conversation and collection the context carries) are
//!   set with `SET LOCAL`, in the same round trip as `BEGIN`.
//! * [`rls`] writes the policies that read those settings; [`audit`] checks
//!   at start-up that the database really enforces them.
//! * [`AdminPool`] is the explicit, logged way around all of this, for
//!   migrations and deliberate cross-tenant jobs.
//! * `registry` (feature `registry`): the `tenants` table, a cached
//!   `Validator` on it, and typed per-tenant settings.
//! * `memory` (feature `memory`): conversation memory for chat agents
//!   (`ConversationMemory`), stored under Row-Level Security.
//!
//! ```no_run
//! use tenant_core::{Ctx, Validated};
//! use tenant_sqlx::TenantPool;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = TenantPool::connect("postgres://app@localhost/app").await?;
//! let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
//! let mut tx = pool.begin(&ctx).await?;
//! let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, body FROM notes")
//!     .fetch_all(&mut tx)
//!     .await?; // only acme's notes: RLS filters by the transaction's tenant
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod executor;

mod admin;
pub mod audit;
mod control;
mod error;
mod fair;
pub mod guard;
#[cfg(feature = "memory")]
pub mod memory;
mod pin;
mod pool;
#[cfg(feature = "registry")]
pub mod registry;
pub mod rls;
#[cfg(test)]
mod server_tests;
mod setting_names;
mod sql;
mod stash;
mod taint;
mod tx;

pub use admin::{AdminConn, AdminPool};
pub use error::Error;
pub use fair::{FairShares, TenantFigures};
pub use pool::{Begin, TenantPool, TenantPoolBuilder, DEFAULT_AUDIT_INTERVAL};
pub use setting_names::SettingNames;
pub use tx::{Savepoint, TenantTx};
