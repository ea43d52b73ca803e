//! Prototype (docs/provenance.md): what every handler writes with the
//! witness in the types, one conversion before its first transaction.
use tenant_core::{with_context, ContextError, Ctx};
use ui_tests::prototype::{Authorized, StrictPool};

#[derive(Debug)]
enum AppError {
    Context(ContextError),
    Db(tenant_sqlx::Error),
}
impl From<ContextError> for AppError {
    fn from(e: ContextError) -> Self {
        AppError::Context(e)
    }
}
impl From<tenant_sqlx::Error> for AppError {
    fn from(e: tenant_sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

#[with_context(tenant)]
async fn count(pool: &StrictPool, ctx: Ctx) -> Result<i64, AppError> {
    let ctx = Authorized::check(ctx)?;
    let mut tx = pool.begin(&ctx).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .map_err(tenant_sqlx::Error::from)?;
    tx.commit().await?;
    Ok(n)
}

fn main() {
    let _ = count;
    let _ = |e: AppError| match e {
        AppError::Context(c) => c.code(),
        AppError::Db(d) => d.code(),
    };
}
