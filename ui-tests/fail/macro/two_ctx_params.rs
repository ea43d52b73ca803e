//! One function, one context: a second context parameter is refused.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
async fn copy(from: Ctx, to: Ctx) -> Result<String, ContextError> {
    Ok(format!("{} -> {}", from.tenant_id(), to.tenant_id()))
}

fn main() {}
