//! Hiding the state of the context behind a generic, so that a helper that
//! "works for any `Ctx`" opens a transaction for a raw, unchecked tenant.
//! `begin` requires `S: IsValidated`, and the generic bound does not promise
//! it.
use tenant_core::{ContextState, Ctx};
use tenant_sqlx::TenantPool;

async fn open_any<S: ContextState>(
    pool: &TenantPool,
    ctx: &Ctx<S>,
) -> Result<(), tenant_sqlx::Error> {
    let tx = pool.begin(ctx).await?;
    tx.commit().await
}

async fn handler(pool: &TenantPool) -> Result<(), tenant_sqlx::Error> {
    let raw = Ctx::unvalidated().with_tenant("default");
    open_any(pool, &raw).await
}

fn main() {
    let _ = handler;
}
