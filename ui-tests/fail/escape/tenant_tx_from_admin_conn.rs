//! Converting an admin connection into a `TenantTx` with `From`, to pass a
//! privileged session (no tenant, no transaction) to code that trusts a
//! `TenantTx`. A `TenantTx` is only made by `TenantPool::begin`.
use tenant_sqlx::{AdminConn, TenantTx};

fn disguise(conn: AdminConn) -> TenantTx<'static> {
    TenantTx::from(conn)
}

fn main() {
    let _ = disguise;
}
