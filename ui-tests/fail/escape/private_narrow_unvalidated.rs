//! Calling the hidden `tenant_core::__private::narrow` (which
//! `#[with_context]` uses to re-type a validated context) on a raw context,
//! to turn it into a validated one. It requires the source state to be a
//! validated one that covers the target.
use tenant_core::__private::narrow;
use tenant_core::{Ctx, Unvalidated, Validated};

fn main() {
    let raw = Ctx::unvalidated().with_tenant("default");
    let _ctx: Ctx<Validated> = narrow::<Unvalidated, Validated>(&raw);
}
