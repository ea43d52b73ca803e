//! `Connection::close` on a tenant transaction, to end the session by hand
//! instead of `commit`/`rollback`. `TenantTx` is not a `Connection`: it ends
//! with `commit`, `rollback` or drop, and the pool decides what happens to
//! the session.
use sqlx::Connection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    tx.close().await?;
    Ok(())
}

fn main() {
    let _ = handler;
}
