//! An option given twice is refused, even with the same meaning.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agent, conversation, agent)]
async fn query(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
