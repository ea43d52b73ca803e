//! Acquiring a bare connection from a `TenantPool` with `sqlx::Acquire`, as
//! one does with `&PgPool`: it would be a session with no transaction and
//! no tenant. The only way into a `TenantPool` is `begin` with a validated
//! context.
use sqlx::Acquire;
use tenant_sqlx::TenantPool;

async fn raw(pool: &TenantPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT * FROM notes")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn main() {
    let _ = raw;
}
