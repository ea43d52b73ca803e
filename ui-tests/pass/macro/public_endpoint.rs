//! A public endpoint: `validate_tenant = false` hands the body the raw
//! `Ctx<Unvalidated>`, never fails, and may return any type.
use tenant_core::{with_context, Ctx, Incoming, Unvalidated};

#[with_context(validate_tenant = false)]
async fn landing(ctx: Ctx<Unvalidated>) -> String {
    match ctx.raw_tenant() {
        Some(t) => format!("welcome back, {t}"),
        None => "welcome".to_owned(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(landing()), "welcome");
    let raw = Ctx::unvalidated().with_tenant("default");
    assert_eq!(
        rt.block_on(Incoming::new(raw).scope(landing())),
        "welcome back, default"
    );
}
