//! `require::<T>()` re-types a validated context that already carries
//! every field `T` needs. Calling it on a raw context, to get a validated
//! one without checking the values, does not compile.
use tenant_core::{Ctx, Validated};

fn main() {
    let raw = Ctx::unvalidated().with_tenant("default");
    let _ctx = raw.require::<Validated>();
}
