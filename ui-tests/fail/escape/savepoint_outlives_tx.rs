//! Returning a savepoint from the function that opened its transaction, so
//! that the caller keeps a handle on the tenant's session after the
//! `TenantTx` is gone. A `Savepoint` borrows its transaction.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{Savepoint, TenantPool};

async fn open<'a>(pool: &TenantPool, ctx: &'a Ctx<Validated>) -> Savepoint<'a> {
    let mut tx = pool.begin(ctx).await.unwrap();
    tx.savepoint().await.unwrap()
}

fn main() {
    let _ = open;
}
