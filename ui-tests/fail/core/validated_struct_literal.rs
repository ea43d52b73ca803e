//! A validated context cannot be written down by hand: the only way to one is
//! validation.
use tenant_core::{Ctx, Validated};

fn main() {
    let _ctx: Ctx<Validated> = Ctx { fields: Default::default() };
}
