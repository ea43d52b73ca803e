//! Replacing the session under a savepoint, to carry the tenant's session
//! out of the transaction through the savepoint rather than the
//! transaction itself. `Savepoint` has no `DerefMut` to a `PgConnection`.
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(
    pool: &TenantPool,
    ctx: Ctx<Validated>,
    url: &str,
) -> Result<(), tenant_sqlx::Error> {
    let own = PgConnection::connect(url).await?;
    let mut tx = pool.begin(&ctx).await?;
    let mut sp = tx.savepoint().await?;
    let _tenant_session: PgConnection = std::mem::replace(&mut *sp, own);
    sp.rollback().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
