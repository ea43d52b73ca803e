//! Every bad option is reported in one compile, not one per attempt.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant, tenant, validate_tenant = "no", timeout = 5)]
async fn query(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
