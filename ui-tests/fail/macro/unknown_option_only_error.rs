//! With an unknown option the macro still emits the function (without the
//! context parameter), so the body that uses `ctx` and the router that
//! calls the handler cause no follow-on errors: the typo is the only error.
use axum::routing::get;
use axum::Router;
use tenant_core::{with_context, ContextError, Ctx, Validated, WithAgent};

#[with_context(tenant, agent, colection)]
async fn list_documents(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(format!("{} / {}", ctx.tenant_id(), ctx.agent_id()))
}

fn main() {
    let _app: Router = Router::new().route("/documents", get(list_documents));
}
