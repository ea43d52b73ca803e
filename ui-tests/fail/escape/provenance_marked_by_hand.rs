//! Marking a context as authorized without running a validator: the
//! setter of the provenance mark is private to `tenant_core`; the only
//! public ways to a mark are a validator (`validate_with`, `authorize`) and
//! the logged `trust(reason)`.
use tenant_core::{Ctx, Provenance, Validated};

fn forge(ctx: Ctx<Validated>) -> Ctx<Validated> {
    ctx.marked(Provenance::Authorized)
}

fn main() {
    let _ = forge;
}
