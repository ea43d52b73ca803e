//! `agent = ...` must name one of the function's parameters; a near miss
//! gets a hint.
use axum::extract::Path;
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agent = agent)]
async fn query(Path(agent_id): Path<String>, ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(format!("{agent_id} {}", ctx.agent_id()))
}

fn main() {}
