//! `begin` takes a validated context only: the raw values from a request
//! must go through validation first.
use tenant_core::Ctx;
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool) -> Result<(), tenant_sqlx::Error> {
    let raw = Ctx::unvalidated().with_tenant("acme");
    let tx = pool.begin(&raw).await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
