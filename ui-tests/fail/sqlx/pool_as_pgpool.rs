//! The `PgPool` inside a `TenantPool` cannot be taken out: not by deref
//! coercion, ...
use sqlx::PgPool;
use tenant_sqlx::TenantPool;

fn raw(pool: &TenantPool) -> &PgPool {
    pool
}

fn main() {
    let _ = raw;
}
