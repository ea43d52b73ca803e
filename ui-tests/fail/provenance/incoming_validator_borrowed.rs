//! Borrowing the application's validator from the request's incoming
//! context, to authorize a context of the handler's own making: the
//! validator is not reachable from handler code (`has_validator` only says
//! whether there is one).
use tenant_core::{Ctx, Incoming, Validated};

async fn handler() -> Result<(), tenant_core::ContextError> {
    let incoming = Incoming::current().expect("inside a request");
    let validator = incoming.validator().unwrap();
    let globex: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("globex")
        .validate_with(&**validator)
        .await?;
    let _ = globex;
    Ok(())
}

fn main() {
    let _ = handler;
}
