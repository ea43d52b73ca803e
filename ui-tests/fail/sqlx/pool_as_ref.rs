//! ... nor by `AsRef`, ...
use sqlx::PgPool;
use tenant_sqlx::TenantPool;

fn raw(pool: &TenantPool) -> &PgPool {
    pool.as_ref()
}

fn main() {
    let _ = raw;
}
