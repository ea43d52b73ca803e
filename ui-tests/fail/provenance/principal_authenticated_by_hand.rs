//! Calling the edge resolver's own constructor of a principal: it is
//! private to `tenant_core`.
use tenant_core::{Principal, PrincipalSource};

fn main() {
    let _globex = Principal::authenticated("globex", None, PrincipalSource::BearerToken);
}
