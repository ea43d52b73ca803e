//! Declaring an application-defined state that claims to be validated, so
//! that a `Ctx<Trusted>` could open transactions. `ContextState` is sealed:
//! only `Unvalidated` and `Validated<..>` are states.
use tenant_core::{ContextState, IsValidated, Validated};

// The module that defines it is private; the type is still reachable as
// the `Fields` of a validated state.
type ValidFields = <Validated as ContextState>::Fields;

enum Trusted {}

impl ContextState for Trusted {
    type Fields = ValidFields;
}

impl IsValidated for Trusted {
    const REQUIRES: [Option<tenant_core::Field>; 3] = [None, None, None];
}

fn main() {}
