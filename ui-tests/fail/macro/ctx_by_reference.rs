//! The context is handed over by value; `&Ctx` would leave it as a
//! parameter callers must pass.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
async fn query(ctx: &Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
