//! Prototype (docs/provenance.md): with the witness in the types, a forged
//! context does not reach a strict pool: `begin` wants `Authorized<_>`.
use tenant_core::{Ctx, Validated};
use ui_tests::prototype::StrictPool;

async fn forged(pool: &StrictPool) {
    let globex: Ctx<Validated> = Ctx::unvalidated().with_tenant("globex").validate().unwrap();
    let _tx = pool.begin(&globex).await;
}

fn main() {
    let _ = forged;
}
