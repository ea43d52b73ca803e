//! A `TenantTx` cannot be built directly from a pooled connection: only
//! `TenantPool::begin` makes one, after setting the tenant.
use tenant_sqlx::TenantTx;

fn forge(conn: sqlx::pool::PoolConnection<sqlx::Postgres>) -> TenantTx<'static> {
    TenantTx { inner: conn }
}

fn main() {
    let _ = forge;
}
