//! There is no `Default` validated context (no "default" tenant).
use tenant_core::{Ctx, Validated};

fn main() {
    let _ctx: Ctx<Validated> = Ctx::default();
}
