//! Calling `__private::unreachable_ctx`, a hidden helper that would produce
//! a value of any type, to conjure a `Ctx<Validated>` that type-checks. The
//! macro's error fallback needs no such helper, and no public function
//! returns a context of an arbitrary type.
use tenant_core::{Ctx, Validated};

fn forge() -> Ctx<Validated> {
    tenant_core::__private::unreachable_ctx()
}

fn main() {
    let _ = forge;
}
