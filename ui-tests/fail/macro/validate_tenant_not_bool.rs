//! `validate_tenant` takes a `bool` literal, not a string.
use tenant_core::{with_context, Ctx, Unvalidated};

#[with_context(validate_tenant = "false")]
async fn landing(ctx: Ctx<Unvalidated>) -> String {
    format!("{:?}", ctx.raw_tenant())
}

fn main() {}
