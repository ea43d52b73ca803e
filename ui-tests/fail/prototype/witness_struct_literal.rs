//! Prototype (docs/provenance.md): the witness cannot be built by hand.
use tenant_core::{Ctx, Validated};
use ui_tests::prototype::Authorized;

fn main() {
    let globex: Ctx<Validated> = Ctx::unvalidated().with_tenant("globex").validate().unwrap();
    let _ = Authorized(globex);
}
