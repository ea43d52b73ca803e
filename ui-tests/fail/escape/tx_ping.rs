//! Calling `sqlx::Connection` methods on a tenant transaction as if it were
//! the connection (here `ping`). `TenantTx` is not a `Connection`; it runs
//! statements through `&mut tx` and nothing else.
use sqlx::Connection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    tx.ping().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
