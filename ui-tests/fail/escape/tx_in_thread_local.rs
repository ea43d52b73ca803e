//! Parking a transaction in a `thread_local!` so that a later request served
//! by the same thread picks it up: the transaction would outlive the
//! request's context (and serve another tenant's request). A thread-local
//! holds `'static` data, and a `TenantTx` borrows its context.
use std::cell::RefCell;

use tenant_core::{Ctx, Validated};
use tenant_sqlx::{TenantPool, TenantTx};

thread_local! {
    static PARKED: RefCell<Option<TenantTx<'static>>> = const { RefCell::new(None) };
}

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(&ctx).await?;
    PARKED.with(|parked| *parked.borrow_mut() = Some(tx));
    Ok(())
}

fn main() {
    let _ = handler;
}
