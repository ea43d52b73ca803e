//! Calling the crate's own `set_local_sql` by path to build a
//! `SET LOCAL app.current_tenant = …` for another tenant and run it inside
//! the current transaction. It is not public: the tenant of a
//! transaction is only ever set by `TenantPool::begin`, from a validated
//! context.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

async fn handler(pool: &TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
    let mut tx = pool.begin(&ctx).await?;
    let switch = tenant_sqlx::set_local_sql("app.current_tenant", "globex")?;
    sqlx::raw_sql(&switch).execute(&mut tx).await?;
    tx.commit().await
}

fn main() {
    let _ = handler;
}
