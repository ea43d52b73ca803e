//! Taking the `PgPool` out of a `TenantPool` through its private field, to
//! run queries with no tenant transaction. The field is private to
//! `tenant_sqlx` (and there is no `Deref`, `AsRef` or `From` either: see
//! `fail/sqlx/pool_*.rs`).
use sqlx::PgPool;
use tenant_sqlx::TenantPool;

fn raw(pool: &TenantPool) -> PgPool {
    pool.pool.clone()
}

fn main() {
    let _ = raw;
}
