//! `sqlx::Acquire` on a tenant transaction: for a sqlx `Transaction` it
//! yields the `&mut PgConnection` inside. `&mut TenantTx` is an `Executor`
//! only, not `Acquire`.
use sqlx::{Acquire, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session: &mut PgConnection = tx.acquire().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
