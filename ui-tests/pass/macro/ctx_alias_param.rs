//! A context type behind an alias is not recognisable by its name:
//! `#[ctx]` marks the parameter, and the compiler checks the alias against
//! the options.
use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};

type AgentCtx = Ctx<Validated<WithAgent>>;

#[with_context(tenant, agent)]
async fn whoami(prefix: &str, #[ctx] ctx: AgentCtx) -> Result<String, ContextError> {
    Ok(format!("{prefix}{}", ctx.agent_id()))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
    assert_eq!(
        rt.block_on(Incoming::new(raw).scope(whoami("I am ")))
            .unwrap(),
        "I am agent-7"
    );
}
