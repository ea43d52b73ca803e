//! `crate = "..."`: a service that re-exports the runtime under its own
//! name points the macro at it.
mod platform {
    pub use tenant_core as tenant;
}

use platform::tenant::{with_context, ContextError, Ctx, Incoming};

#[with_context(tenant, crate = "crate::platform::tenant")]
async fn whoami(ctx: Ctx) -> Result<String, ContextError> {
    Ok(ctx.tenant_id().to_string())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme");
    assert_eq!(
        rt.block_on(Incoming::new(raw).scope(whoami())).unwrap(),
        "acme"
    );
}
