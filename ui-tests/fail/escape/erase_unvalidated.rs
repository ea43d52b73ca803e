//! `erase()` turns any validated context into a `Ctx<Validated>` (fewer
//! guarantees, same values). Calling it on a raw context to get a
//! `Ctx<Validated>` does not compile: it is only available on validated
//! states.
use tenant_core::{Ctx, Validated};

fn main() {
    let raw = Ctx::unvalidated().with_tenant("default");
    let _ctx: Ctx<Validated> = raw.erase();
}
