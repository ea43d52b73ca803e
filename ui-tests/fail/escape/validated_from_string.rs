//! Making a validated context from an owned `String` (a header value, a
//! JWT claim) with `From<String>`. There is no such conversion (nor from
//! `&str`: see `fail/core/validated_from_str.rs`): the text must be
//! validated.
use tenant_core::{Ctx, Validated};

fn main() {
    let header: String = String::from("acme");
    let _ctx = Ctx::<Validated>::from(header);
}
