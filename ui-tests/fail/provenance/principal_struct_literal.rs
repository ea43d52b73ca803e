//! Making up a principal for another tenant: a `Principal` has private
//! fields, so only an authenticated source (the edge resolver) or an
//! authorized or trusted context (`Incoming::on_behalf_of`) makes one.
use tenant_core::{Principal, PrincipalSource};

fn main() {
    let _globex = Principal {
        tenant: "globex".into(),
        agent: None,
        source: PrincipalSource::BearerToken,
    };
}
