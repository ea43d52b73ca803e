//! A transaction cannot be stored in a `static`: it borrows a context that
//! does not live forever.
use std::sync::{Mutex, OnceLock};

use tenant_core::{Ctx, Validated};
use tenant_sqlx::{TenantPool, TenantTx};

static CURRENT: OnceLock<Mutex<TenantTx<'static>>> = OnceLock::new();

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) {
    let tx = pool.begin(&ctx).await.unwrap();
    let _ = CURRENT.set(Mutex::new(tx));
}

fn main() {
    let _ = handler;
}
