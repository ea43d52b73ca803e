//! Swapping the session under a savepoint with a connection the application
//! opened itself: the rest of the transaction would run on a session with no
//! tenant. A `Savepoint` does not dereference to a `PgConnection` either.
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(
    pool: &TenantPool,
    ctx: Ctx<Validated>,
    url: &str,
) -> Result<(), tenant_sqlx::Error> {
    let mut own = PgConnection::connect(url).await?;
    let mut tx = pool.begin(&ctx).await?;
    let mut sp = tx.savepoint().await?;
    std::mem::swap(&mut *sp, &mut own);
    sp.commit().await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
