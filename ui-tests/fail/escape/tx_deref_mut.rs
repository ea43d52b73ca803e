//! Calling `DerefMut::deref_mut` by name to get the `&mut PgConnection`
//! under a tenant transaction (what sqlx's own `Transaction` allows). A
//! `TenantTx` implements neither `Deref` nor `DerefMut`: `&mut tx` is an
//! executor, never a session.
use std::ops::DerefMut;

use sqlx::PgConnection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session: &mut PgConnection = tx.deref_mut();
    tx.commit().await
}

fn main() {
    let _ = handler;
}
