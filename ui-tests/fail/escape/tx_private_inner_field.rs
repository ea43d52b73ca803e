//! Reaching the connection through the transaction's private field, as a
//! developer who read the source of `tenant_sqlx::TenantTx` might. The
//! field is private to `tenant_sqlx`.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _inner = &mut tx.inner;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
