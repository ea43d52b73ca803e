//! The function's error type has no `From<ContextError>`: the error lands
//! on the return type and says which impl to add.
use tenant_core::{with_context, Ctx};

#[derive(Debug)]
enum AppError {
    NotFound,
}

#[with_context(tenant)]
async fn find(ctx: Ctx, id: u32) -> Result<String, AppError> {
    if id == 0 {
        return Err(AppError::NotFound);
    }
    Ok(format!("{}/{id}", ctx.tenant_id()))
}

fn main() {}
