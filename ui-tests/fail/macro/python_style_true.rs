//! Written the way the Python decorator reads (`agent=True`): the error
//! says how the Rust attribute writes it.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agent = true)]
async fn query(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
