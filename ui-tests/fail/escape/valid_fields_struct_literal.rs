//! Writing down the hidden `tenant_core::ctx::ValidFields` (what a
//! validated context holds) by hand, to fill a validated context with values
//! chosen by the caller instead of by `validate`. Its fields are private to
//! `tenant_core`, the provenance mark among them: nobody can write down
//! a context that says a validator accepted it.
use tenant_core::ctx::ValidFields;
use tenant_core::{Provenance, TenantId};

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
