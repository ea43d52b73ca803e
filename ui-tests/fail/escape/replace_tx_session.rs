//! Replacing the session inside a tenant transaction with a connection the
//! application opened itself (as any role, with no tenant set), and walking
//! away with the tenant's session. `TenantTx` has no `DerefMut` to a
//! `PgConnection`, so there is no place to write the replacement.
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(
    pool: &TenantPool,
    ctx: Ctx<Validated>,
    url: &str,
) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let own = PgConnection::connect(url).await?;
    let _tenant_session: PgConnection = std::mem::replace(&mut *tx, own);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
