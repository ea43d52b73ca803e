//! Reaching the pooled connection through a `conn` field, the name sqlx's
//! `Transaction` gives it internally. No such field is visible: a
//! `TenantTx` has no public fields at all.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session = tx.conn.take();
    tx.commit().await
}

fn main() {
    let _ = handler;
}
