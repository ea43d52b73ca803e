//! A helper generic over `E: sqlx::Executor<'c, Database = Postgres>`, the
//! usual way to share query code, takes `&mut tx`, `&mut sp` and an admin
//! connection's `&mut conn` alike.
use sqlx::{Executor, Postgres};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{AdminPool, TenantPool};

async fn count_notes<'c, E>(executor: E) -> Result<i64, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(executor)
        .await
}

async fn rename<'c, E>(executor: E, id: i64, title: &str) -> Result<u64, sqlx::Error>
where
    E: Executor<'c, Database = Postgres>,
{
    let done = sqlx::query("UPDATE notes SET title = $2 WHERE id = $1")
        .bind(id)
        .bind(title)
        .execute(executor)
        .await?;
    Ok(done.rows_affected())
}

#[allow(dead_code)]
async fn handler(
    pool: &TenantPool,
    admin: &AdminPool,
    ctx: &Ctx<Validated>,
) -> Result<i64, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    let before = count_notes(&mut tx).await?;
    {
        let mut sp = tx.savepoint().await?;
        rename(&mut sp, 1, "renamed").await?;
        let inside = count_notes(&mut sp).await?;
        let mut nested = sp.savepoint().await?;
        rename(&mut nested, 2, "nested").await?;
        nested.commit().await?;
        if inside == before {
            sp.commit().await?;
        } else {
            sp.rollback().await?;
        }
    }
    let after = count_notes(&mut tx).await?;
    tx.commit().await?;

    let mut conn = admin.acquire("report: notes across tenants").await?;
    let everyone = count_notes(&mut conn).await?;
    Ok(after + everyone)
}

fn main() {}
