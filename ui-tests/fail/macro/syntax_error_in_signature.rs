//! A syntax error in the signature is reported by the parser where it is.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
async fn query(ctx: Ctx, limit: ) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
