//! A transaction cannot be moved into `tokio::spawn`: the task could outlive
//! the context the transaction borrows. Move the context into the task and
//! open the transaction there instead.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    tokio::spawn(async move {
        let _ = tx.commit().await;
    });
    Ok(())
}

fn main() {
    let _ = handler;
}
