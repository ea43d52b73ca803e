//! Cloning a raw context into a variable of the validated type, hoping the
//! state is only a label. `Clone` keeps the state: a clone of a
//! `Ctx<Unvalidated>` is a `Ctx<Unvalidated>`.
use tenant_core::{Ctx, Validated};

fn main() {
    let raw = Ctx::unvalidated().with_tenant("default");
    let _ctx: Ctx<Validated> = raw.clone();
}
