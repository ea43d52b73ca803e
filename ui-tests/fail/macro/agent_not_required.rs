//! A handler that did not declare `agent` asks for the guaranteed
//! `agent_id()`: the error says to add `agent` to the attribute.
use tenant_core::{with_context, ContextError, Ctx};

#[with_context(tenant)]
async fn query(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
