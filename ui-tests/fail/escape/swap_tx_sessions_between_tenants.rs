//! Swapping the sessions of two tenants' transactions, so that the code
//! holding acme's `TenantTx` runs its queries on globex's session (and each
//! session goes back to the pool under the other's bookkeeping). A
//! `TenantTx` does not dereference to its `PgConnection`: there is nothing
//! to swap.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(
    pool: &TenantPool,
    acme: Ctx<Validated>,
    globex: Ctx<Validated>,
) -> Result<(), tenant_sqlx::Error> {
    let mut tx_acme = pool.begin(&acme).await?;
    let mut tx_globex = pool.begin(&globex).await?;
    std::mem::swap(&mut *tx_acme, &mut *tx_globex);
    tx_acme.commit().await?;
    tx_globex.commit().await
}

fn main() {
    let _ = handler;
}
