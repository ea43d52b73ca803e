//! A public endpoint (`validate_tenant = false`) cannot promise its body a
//! validated context.
use tenant_core::{with_context, Ctx, Validated};

#[with_context(validate_tenant = false)]
async fn landing(ctx: Ctx<Validated>) -> String {
    ctx.tenant_id().to_string()
}

fn main() {}
