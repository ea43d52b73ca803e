//! Writing down the hidden `ValidFields` (what a
//! validated context holds) by hand, to fill a validated context with values
//! chosen by the caller instead of by `validate`. Its fields are private to
//! `tenant_core`, the provenance mark among them: nobody can write down
//! a context that says a validator accepted it.
use tenant_core::{ContextState, Provenance, TenantId, Validated};

// The module that defines it is private; the type is still reachable as
// the `Fields` of a validated state.
type ValidFields = <Validated as ContextState>::Fields;

fn forge(tenant: TenantId) -> ValidFields {
    ValidFields {
        tenant,
        agent: None,
        conversation: None,
        collection: None,
        provenance: Provenance::Authorized,
    }
}

fn main() {
    let _ = forge;
}
