//! Going through `BorrowMut<PgConnection>` instead of `Deref` or `AsMut`.
//! The only `BorrowMut` a `TenantTx` has is the blanket one, to itself.
use std::borrow::BorrowMut;

use sqlx::PgConnection;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let _session: &mut PgConnection = BorrowMut::<PgConnection>::borrow_mut(&mut tx);
    tx.commit().await
}

fn main() {
    let _ = handler;
}
