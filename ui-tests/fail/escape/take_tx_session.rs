//! Taking the session out of a tenant transaction with `mem::take`, to keep
//! it past the transaction. There is no `&mut PgConnection` to take from
//! (and a `PgConnection` has no `Default` to leave behind).
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session = std::mem::take(&mut *tx);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
