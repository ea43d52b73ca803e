//! Through a type alias the macro cannot read the state, so the compiler
//! checks it: the message still says which field the attribute lacks.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

type AgentState = Validated<WithAgent>;

#[with_context(tenant)]
async fn query(ctx: Ctx<AgentState>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
