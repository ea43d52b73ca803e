//! The admin path runs queries on `&mut conn`, like a tenant transaction.
use tenant_sqlx::AdminPool;

#[allow(dead_code)]
async fn migrate(admin: &AdminPool) -> Result<i64, tenant_sqlx::Error> {
    let mut conn = admin.acquire("migrate: create notes").await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS notes (id bigserial, tenant_id text NOT NULL, title text)",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query("INSERT INTO notes (tenant_id, title) VALUES ($1, $2)")
        .bind("acme")
        .bind("welcome")
        .execute(&mut conn)
        .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut conn)
        .await?;
    let _why: &str = conn.reason();
    Ok(total)
}

fn main() {}
