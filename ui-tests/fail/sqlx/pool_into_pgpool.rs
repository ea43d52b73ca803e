//! ... nor by `From`/`Into`.
use sqlx::PgPool;
use tenant_sqlx::TenantPool;

fn raw(pool: TenantPool) -> PgPool {
    PgPool::from(pool)
}

fn main() {
    let _ = raw;
}
