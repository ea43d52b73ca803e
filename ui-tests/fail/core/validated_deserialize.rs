//! A validated context cannot be deserialized from a request body or a queue
//! message: deserialize the envelope's raw context and validate it.
use tenant_core::{Ctx, Validated};

fn main() {
    let _ctx: Ctx<Validated> = serde_json::from_str(r#"{"tenant":"acme"}"#).unwrap();
}
