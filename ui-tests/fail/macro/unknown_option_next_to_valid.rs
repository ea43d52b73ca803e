//! A misspelt `agent` next to a valid `tenant`: only the typo is reported,
//! not also "this parameter requires an agent the options do not declare",
//! which would only be a consequence of the typo.
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agnet)]
async fn query(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {}
