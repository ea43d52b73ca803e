//! A free `async fn`: the body receives the validated context it declared
//! (the agent is guaranteed, no `Option`), and callers do not pass it.
use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};

#[derive(Debug)]
enum AppError {
    Context(ContextError),
}

impl From<ContextError> for AppError {
    fn from(e: ContextError) -> Self {
        AppError::Context(e)
    }
}

#[with_context(tenant, agent)]
async fn greet(greeting: &str, ctx: Ctx<Validated<WithAgent>>) -> Result<String, AppError> {
    Ok(format!(
        "{greeting} {} of {}",
        ctx.agent_id(),
        ctx.tenant_id()
    ))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme").with_agent("agent-7"));
    let out = rt.block_on(incoming.scope(greet("hello")));
    assert_eq!(out.unwrap(), "hello agent-7 of acme");

    let AppError::Context(e) = rt.block_on(greet("hello")).unwrap_err();
    assert_eq!(e, ContextError::TenantRequired);
}
