//! Swapping an admin session (a role that bypasses RLS, no tenant) into a
//! tenant transaction: the handler's queries would see every tenant, and the
//! admin session would be handed to the next `begin` by the tenant pool.
//! Neither `AdminConn` nor `TenantTx` dereferences to its `PgConnection`.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{AdminPool, TenantPool};

async fn handler(
    pool: &TenantPool,
    admin: &AdminPool,
    ctx: Ctx<Validated>,
) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let mut conn = admin.acquire("health check").await?;
    std::mem::swap(&mut *conn, &mut *tx);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
