//! A savepoint borrows its transaction: the transaction cannot be committed
//! while the savepoint is still in use.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let mut sp = tx.savepoint().await?;
    tx.commit().await?;
    sqlx::query("SELECT 1").execute(&mut sp).await?;
    Ok(())
}

fn main() {
    let _ = handler;
}
