//! Savepoints nest inside the tenant transaction, and a task that owns its
//! context can open a transaction inside `tokio::spawn`.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

#[allow(dead_code)]
async fn handler(pool: TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    {
        let mut sp = tx.savepoint().await?;
        sqlx::query("DELETE FROM notes").execute(&mut sp).await?;
        let mut inner = sp.savepoint().await?;
        sqlx::query("SELECT 1").execute(&mut inner).await?;
        inner.rollback().await?;
        sp.rollback().await?;
    }
    tx.commit().await?;

    let task = tokio::spawn(async move {
        let tx = pool.begin(&ctx).await?;
        tx.commit().await
    });
    task.await.expect("task panicked")
}

fn main() {}
