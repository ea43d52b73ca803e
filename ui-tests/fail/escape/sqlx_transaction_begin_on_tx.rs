//! Wrapping a tenant transaction in a sqlx `Transaction` with the hidden
//! `Transaction::begin`, to get a value that dereferences to the
//! `PgConnection`. It takes a `&mut PgConnection` or a `PoolConnection`;
//! `&mut tx` converts to neither.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let inner = sqlx::Transaction::<sqlx::Postgres>::begin(&mut tx, None).await?;
    inner.commit().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
