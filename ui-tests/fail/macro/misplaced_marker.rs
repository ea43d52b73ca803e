//! `Validated<A, C, L>` is positional: a conversation marker in the agent's
//! place is caught with the right spelling.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithConversation};

#[with_context(tenant, conversation)]
async fn history(ctx: Ctx<Validated<WithConversation>>) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {}
