//! A string does not become a validated context, nor a tenant id, by `into()`.
use tenant_core::{Ctx, TenantId, Validated};

fn main() {
    let _tenant: TenantId = "acme".into();
    let _ctx: Ctx<Validated> = "acme".into();
}
