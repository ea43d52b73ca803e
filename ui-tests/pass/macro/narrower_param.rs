//! The parameter may guarantee less than the attribute requires (the agent
//! is still required and validated), and its state may be a type alias,
//! which the compiler checks against the options.
use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};

type AgentState = Validated<WithAgent>;

#[with_context(tenant, agent)]
async fn tenant_only(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

#[with_context(tenant, agent, conversation)]
async fn through_alias(ctx: Ctx<AgentState>) -> Result<String, ContextError> {
    Ok(ctx.agent_id().to_string())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme");
    let err = rt
        .block_on(Incoming::new(raw.clone()).scope(tenant_only()))
        .unwrap_err();
    assert_eq!(err, ContextError::AgentRequired);
    let raw = raw.with_agent("agent-7").with_conversation("conv-1");
    assert_eq!(
        rt.block_on(Incoming::new(raw.clone()).scope(tenant_only()))
            .unwrap(),
        "acme"
    );
    assert_eq!(
        rt.block_on(Incoming::new(raw).scope(through_alias()))
            .unwrap(),
        "agent-7"
    );
}
