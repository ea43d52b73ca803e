//! Reaching the transaction's shared state (and its connection) through a
//! savepoint's private field. The field is private to `tenant_sqlx`.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let mut sp = tx.savepoint().await?;
    let _inner = &mut sp.inner;
    sp.commit().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
