//! Asking for a shared reference to the session through
//! `AsRef<PgConnection>`, to inspect it (server version, cached statements,
//! transaction depth) or hand it to code that takes `&PgConnection`.
//! `TenantTx` exposes no session, not even read-only.
use sqlx::PgConnection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    let session: &PgConnection = tx.as_ref();
    let _ = session;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
