//! A field bound to a parameter is read as text; a number is not an id.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agent = agent_no)]
async fn query(agent_no: u64, ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(format!("{agent_no} {}", ctx.agent_id()))
}

fn main() {}
