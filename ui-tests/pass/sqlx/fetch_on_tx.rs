//! Every sqlx terminal runs on `&mut tx`: `execute`, `fetch_one`,
//! `fetch_all`, `fetch_optional`, with `query`, `query_as` and
//! `query_scalar`, and with `raw_sql`.
use sqlx::Row;
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

#[allow(dead_code)]
async fn handler(pool: &TenantPool, ctx: &Ctx<Validated>) -> Result<usize, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    sqlx::raw_sql("UPDATE notes SET title = trim(title)")
        .execute(&mut tx)
        .await?;
    let inserted = sqlx::query("INSERT INTO notes (tenant_id, title) VALUES ($1, 'hi')")
        .bind(ctx.tenant_id().as_str())
        .execute(&mut tx)
        .await?
        .rows_affected();
    let row = sqlx::query("SELECT id, title FROM notes ORDER BY id LIMIT 1")
        .fetch_one(&mut tx)
        .await?;
    let _title: String = row.try_get("title")?;
    let all: Vec<(i64, String)> = sqlx::query_as("SELECT id, title FROM notes")
        .fetch_all(&mut tx)
        .await?;
    let first: Option<i64> = sqlx::query_scalar("SELECT id FROM notes WHERE title = $1")
        .bind("hi")
        .fetch_optional(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(all.len() + inserted as usize + first.map_or(0, |_| 1))
}

fn main() {}
