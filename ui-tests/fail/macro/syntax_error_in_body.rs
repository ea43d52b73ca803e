//! A syntax error inside the body is reported as the body's error, where
//! it is, not as "`#[with_context]` goes on an `async fn`".
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
async fn query(ctx: Ctx) -> Result<String, ContextError> {
    let name = ctx.tenant_id().to_string()
    Ok(name)
}

fn main() {}
