//! Options without a comma between them: the one error says so, and the
//! context parameter (which requires an agent) causes no second error.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant agent)]
async fn query(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
