//! Tenant transactions on PostgreSQL with Row-Level Security.
#![deny(missing_docs)]
