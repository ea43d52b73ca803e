//! Taking a session-level advisory lock through sqlx's `PgAdvisoryLock` on
//! a tenant transaction. Its guard would hold the tenant's connection (and
//! dereference to it), and the lock would outlive the transaction in the
//! pooled session. It needs `AsMut<PgConnection>`, which `TenantTx` does
//! not implement.
use sqlx::postgres::PgAdvisoryLock;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    let lock = PgAdvisoryLock::new("nightly-import");
    let _guard = lock.acquire(tx).await?;
    Ok(())
}

fn main() {
    let _ = handler;
}
