//! Declaring an application-defined state that claims to be validated, so
//! that a `Ctx<Trusted>` could open transactions. `ContextState` is sealed:
//! only `Unvalidated` and `Validated<..>` are states.
use tenant_core::ctx::ValidFields;
use tenant_core::{ContextState, IsValidated};

enum Trusted {}

impl ContextState for Trusted {
    type Fields = ValidFields;
}

impl IsValidated for Trusted {
    const REQUIRES: [Option<tenant_core::Field>; 3] = [None, None, None];
}

fn main() {}
