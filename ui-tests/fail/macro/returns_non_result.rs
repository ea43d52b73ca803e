//! A validating function must be able to return the validation error: a
//! `String` return type cannot.
use tenant_core::{with_context, Ctx};

#[with_context(tenant)]
async fn tenant_name(ctx: Ctx) -> String {
    ctx.tenant_id().to_string()
}

fn main() {}
