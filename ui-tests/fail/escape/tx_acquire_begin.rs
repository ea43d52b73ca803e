//! `Acquire::begin` on `&mut tx`, to get a sqlx `Transaction` nested in the
//! tenant transaction: that `Transaction` dereferences to the
//! `PgConnection`, and its `COMMIT` would end the tenant's transaction
//! behind the `TenantTx`. Use `tx.savepoint()` for a nested transaction.
use sqlx::Acquire;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let nested = (&mut tx).begin().await?;
    nested.commit().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
