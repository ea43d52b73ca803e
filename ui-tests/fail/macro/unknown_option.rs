//! A misspelt option gets a "did you mean" hint and the list of options.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant, agnet)]
async fn query(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
