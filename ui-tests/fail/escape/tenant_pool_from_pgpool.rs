//! Wrapping a plain `PgPool` into a `TenantPool` with `From`, skipping the
//! start-up audit and the pool's own session hygiene (and making any pool,
//! of any role, look like a tenant pool). A `TenantPool` is only made by
//! `TenantPool::connect` or its builder.
use sqlx::PgPool;
use tenant_sqlx::TenantPool;

fn wrap(pool: PgPool) -> TenantPool {
    TenantPool::from(pool)
}

fn main() {
    let _ = wrap;
}
