//! Storing a reference to the request's context in a `OnceLock`, to open
//! transactions from it after the request is over (from any task, for
//! whatever tenant the first request had). A `static` needs a `'static`
//! reference, and the context is a local of the handler.
use std::sync::OnceLock;

use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

static FIRST: OnceLock<&'static Ctx<Validated>> = OnceLock::new();

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let first = FIRST.get_or_init(|| &ctx);
    let tx = pool.begin(first).await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
