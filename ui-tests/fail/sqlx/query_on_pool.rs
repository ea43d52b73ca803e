//! A query cannot run on the pool itself: `TenantPool` is not an sqlx
//! executor, so every query goes through a tenant transaction.
use tenant_sqlx::TenantPool;

async fn list(pool: &TenantPool) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM notes").fetch_all(pool).await
}

fn main() {
    let _ = list;
}
