//! A context validated for the tenant only does not guarantee an agent:
//! asking for the guaranteed accessor does not compile.
use tenant_core::{ContextError, Ctx, Validated};

fn main() -> Result<(), ContextError> {
    let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    println!("{}", ctx.agent_id());
    Ok(())
}
