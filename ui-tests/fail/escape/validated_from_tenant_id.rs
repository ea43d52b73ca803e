//! Making a validated context from a `TenantId` that parsed. A parsed id
//! is not a validated context: validation also checks the other fields and
//! the ones the state requires (and `validate_with` the application's own
//! check), and is the one place a validated context comes from. There is no
//! `From<TenantId>`.
use tenant_core::{Ctx, TenantId, Validated};

fn main() {
    let tenant = TenantId::parse("acme").unwrap();
    let _ctx: Ctx<Validated> = Ctx::from(tenant);
}
