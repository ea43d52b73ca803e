//! The parameter asks for a context that guarantees an agent, but the
//! attribute does not require one: the error points at `WithAgent` and
//! says which option to add.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant)]
async fn query(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
