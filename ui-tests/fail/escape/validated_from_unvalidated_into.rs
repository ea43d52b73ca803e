//! Converting a raw context into a validated one with `Into`, skipping the
//! identifier rules (here `default`, which names no tenant). The only way
//! from `Ctx<Unvalidated>` to `Ctx<Validated>` is `validate`.
use tenant_core::{Ctx, Validated};

fn main() {
    let raw = Ctx::unvalidated().with_tenant("default");
    let _ctx: Ctx<Validated> = raw.into();
}
