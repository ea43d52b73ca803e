//! A validating function cannot hand its body the raw context.
use tenant_core::{with_context, ContextError, Ctx, Unvalidated};

#[with_context(tenant)]
async fn query(ctx: Ctx<Unvalidated>) -> Result<String, ContextError> {
    Ok(format!("{:?}", ctx.raw_tenant()))
}

fn main() {}
