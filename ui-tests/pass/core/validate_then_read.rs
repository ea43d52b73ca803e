//! The everyday path: raw values in, validated context out, guaranteed fields
//! read without `Option`.
use tenant_core::{ContextError, Ctx, Validated, WithAgent};

fn main() -> Result<(), ContextError> {
    let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
    let ctx: Ctx<Validated<WithAgent>> = raw.validate()?;
    let _tenant = ctx.tenant_id();
    let _agent = ctx.agent_id();
    let _maybe_conversation = ctx.conversation_id_opt();
    Ok(())
}
