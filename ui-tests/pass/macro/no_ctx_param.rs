//! A function without a context parameter is still validated and runs in
//! the context's scope: code it calls finds the tenant with `current()`.
use tenant_core::{current, with_context, ContextError, Ctx, Incoming};

fn audit_line() -> String {
    format!("{}", current().expect("inside the handler's scope"))
}

#[with_context(tenant)]
async fn health() -> Result<String, ContextError> {
    Ok(audit_line())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme");
    assert_eq!(
        rt.block_on(Incoming::new(raw).scope(health())).unwrap(),
        "[t:acme]"
    );
    assert_eq!(
        rt.block_on(health()).unwrap_err(),
        ContextError::TenantRequired
    );
    assert!(current().is_err());
}
