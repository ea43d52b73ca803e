//! Deserializing a `TenantId` straight from a request body or a message,
//! which would skip the identifier rules (`default`, `*`, quotes...). A
//! `TenantId` is not `Deserialize`: deserialize the raw text (or an
//! `Envelope`) and validate it.
use tenant_core::TenantId;

fn main() {
    let _tenant: TenantId = serde_json::from_str(r#""default""#).unwrap();
}
