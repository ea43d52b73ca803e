//! Calling the crate's one constructor of a validated context,
//! `Ctx::from_fields`, by path. It is private to `tenant_core`: validation
//! is the only way to it.
use std::sync::Arc;

use tenant_core::{ContextState, Ctx, Validated};

// The module that defines it is private; the type is still reachable as
// the `Fields` of a validated state.
type ValidFields = <Validated as ContextState>::Fields;

fn forge(fields: Arc<ValidFields>) -> Ctx<Validated> {
    Ctx::<Validated>::from_fields(fields).unwrap()
}

fn main() {
    let _ = forge;
}
