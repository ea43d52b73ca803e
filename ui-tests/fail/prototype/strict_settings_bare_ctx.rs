//! Prototype (docs/provenance.md): a cache that takes a witness cannot be
//! asked with a bare context.
use tenant_core::{Ctx, Validated};
use ui_tests::prototype::StrictSettings;

fn main() {
    let globex: Ctx<Validated> = Ctx::unvalidated().with_tenant("globex").validate().unwrap();
    let _ = StrictSettings.get(&globex);
}
