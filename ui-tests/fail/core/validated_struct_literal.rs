//! A validated context cannot be written down by hand, even with a tenant id
//! that parsed: the only way to one is validation.
use tenant_core::{Ctx, TenantId, Validated};

fn main() {
    let tenant = TenantId::parse("acme").unwrap();
    let _ctx: Ctx<Validated> = Ctx { tenant };
}
