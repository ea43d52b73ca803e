//! A helper that takes `tx: &mut TenantTx<'_>` and runs several statements
//! reborrows it with `&mut *tx` (a reborrow of the reference, not a deref of
//! the transaction), or passes `&mut *tx` on to another helper.
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{TenantPool, TenantTx};

async fn archive(tx: &mut TenantTx<'_>, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO archive (tenant_id, note_id) SELECT tenant_id, id FROM notes WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM notes WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    remaining(&mut *tx).await
}

async fn remaining(tx: &mut TenantTx<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(tx)
        .await
}

#[allow(dead_code)]
async fn handler(pool: &TenantPool, ctx: &Ctx<Validated>) -> Result<i64, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    archive(&mut tx, 1).await?;
    let left = archive(&mut tx, 2).await?;
    tx.commit().await?;
    Ok(left)
}

fn main() {}
