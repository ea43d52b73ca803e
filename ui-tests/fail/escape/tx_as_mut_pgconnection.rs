//! Asking for the session through `AsMut<PgConnection>`, the bound sqlx
//! uses for APIs that need the connection itself. `TenantTx` does not
//! implement it.
use sqlx::PgConnection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session: &mut PgConnection = AsMut::<PgConnection>::as_mut(&mut tx);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
