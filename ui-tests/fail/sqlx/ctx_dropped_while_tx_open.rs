//! The context must outlive the transaction opened for it: dropping the
//! context while the transaction is still in use does not compile.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    drop(ctx);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
