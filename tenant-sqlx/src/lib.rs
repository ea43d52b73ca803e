//! Tenant transactions on PostgreSQL with Row-Level Security.
//!
//! (Crate docs: see the README; written by the tenant-sqlx issue.)
#![deny(missing_docs)]

pub mod audit;
pub mod rls;
mod settings;

#[cfg(feature = "testing")]
pub mod testing;

pub use settings::Settings;
