//! Calling `__private::unreachable_ctx`, a hidden helper that
//! `#[with_context]`'s error fallback once used to produce a value of any
//! type, to conjure a `Ctx<Validated>` that type-checks. It is gone: no
//! public function returns a context of an arbitrary type.
use tenant_core::{Ctx, Validated};

fn forge() -> Ctx<Validated> {
    tenant_core::__private::unreachable_ctx()
}

fn main() {
    let _ = forge;
}
