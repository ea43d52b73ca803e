//! Putting raw values of another tenant in scope together with the
//! request's principal: `Incoming` has no public way to pair a principal
//! with raw values (`on_behalf_of` takes both from one authorized context).
use tenant_core::{Ctx, Incoming};

fn main() {
    let request = Incoming::current().expect("inside a request");
    let principal = request.principal().cloned();
    let _forged = Incoming::authenticated(Ctx::unvalidated().with_tenant("globex"), principal);
}
