//! `#[with_context]` needs an `async fn`: the error points at `fn`.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
fn tenant_name(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
