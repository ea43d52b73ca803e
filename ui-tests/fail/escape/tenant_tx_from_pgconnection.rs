//! Converting a connection the application opened itself into a `TenantTx`
//! with `Into`, so a session with no tenant set passes for a tenant
//! transaction. A `TenantTx` is only made by `TenantPool::begin`.
use sqlx::PgConnection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantTx;

fn disguise(conn: PgConnection, ctx: &Ctx<Validated>) -> TenantTx<'_> {
    let _ = ctx;
    conn.into()
}

fn main() {
    let _ = disguise;
}
