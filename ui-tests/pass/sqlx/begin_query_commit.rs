//! The everyday path: begin for a validated context, run queries on
//! `&mut tx` (the executor), pass it on to a helper, commit.
use tenant_core::{Ctx, Validated, WithAgent};
use tenant_sqlx::{TenantPool, TenantTx};

async fn titles(tx: &mut TenantTx<'_>) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, title FROM notes ORDER BY id")
        .fetch_all(tx)
        .await
}

#[allow(dead_code)]
async fn handler(
    pool: &TenantPool,
    ctx: &Ctx<Validated<WithAgent>>,
) -> Result<usize, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    sqlx::query("INSERT INTO notes (tenant_id, title) VALUES ($1, $2)")
        .bind(ctx.tenant_id().as_str())
        .bind(ctx.agent_id().as_str())
        .execute(&mut tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await?;
    let all = titles(&mut tx).await?;
    tx.commit().await?;
    Ok(all.len() + n as usize)
}

fn main() {}
