//! Driving sqlx's `PgTransactionManager` by hand on a tenant transaction
//! (`begin`, then `commit` or `rollback`), which would change the
//! transaction state behind the `TenantTx`'s back. Its functions take a
//! `&mut PgConnection`, and `&mut tx` is not one.
use sqlx::postgres::PgTransactionManager;
use sqlx::TransactionManager;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    PgTransactionManager::begin(&mut tx, None).await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
