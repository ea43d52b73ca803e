//! A transaction borrows its context, so it cannot be returned past the
//! context it was opened for.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{TenantPool, TenantTx};

async fn open(pool: &TenantPool, tenant: &str) -> TenantTx<'static> {
    let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant(tenant).validate().unwrap();
    pool.begin(&ctx).await.unwrap()
}

fn main() {
    let _ = open;
}
