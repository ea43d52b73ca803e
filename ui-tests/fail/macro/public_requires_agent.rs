//! Requiring a field needs validation, which a public endpoint turns off.
use tenant_core::{with_context, Ctx, Unvalidated};

#[with_context(agent, validate_tenant = false)]
async fn landing(ctx: Ctx<Unvalidated>) -> String {
    format!("{:?}", ctx.raw_agent())
}

fn main() {}
