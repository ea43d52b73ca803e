#[with_context(tenant)]
async fn count_notes(State(pool): State<TenantPool>, ctx: Ctx) -> Result<String, ApiError> {
    let mut tx = pool.begin(&ctx).await?; // BEGIN …; SET LOCAL app.current_tenant = '…'
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx) // RLS: this tenant's rows only
        .await?;
    tx.commit().await?;
    Ok(format!("{n} notes for {}\n", ctx.tenant_id()))
}
