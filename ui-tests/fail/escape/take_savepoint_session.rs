//! Taking the session out from under a savepoint with `mem::take`. There is
//! no `&mut PgConnection` behind a `Savepoint` to take.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let mut sp = tx.savepoint().await?;
    let _session = std::mem::take(&mut *sp);
    sp.commit().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
