//! The attribute only makes sense on a function: on a struct it says so,
//! and the struct is still emitted (no "cannot find type" errors after it).
use tenant_core::with_context;

#[with_context(tenant)]
struct Handler {
    name: String,
}

fn main() {
    let h = Handler { name: String::new() };
    let _ = h.name;
}
