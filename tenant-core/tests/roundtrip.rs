//! Every accepted identifier round-trips unchanged through the headers, the
//! worker envelope and the key helper.
#![cfg(all(feature = "http", feature = "serde"))]

use http::HeaderMap;
use proptest::prelude::*;
use tenant_core::envelope::Envelope;
use tenant_core::http::{extract, inject};
use tenant_core::{Ctx, Validated, RESERVED_IDS};

/// Identifiers drawn from the allowed alphabet (lower case), 1 to 64 bytes,
/// with at least one letter or digit and not a reserved word: exactly the
/// accepted set.
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._:-]{1,64}",
        // Punctuation-heavy ones, where separators and prefixes go wrong.
        "[:._-]{0,30}[a-z0-9][:._-]{0,30}",
        // Near the reserved words.
        "(default|null|none|undefined)[a-z0-9._:-]{1,8}",
    ]
    .prop_filter("has a letter or digit", |s| {
        s.bytes().any(|b| b.is_ascii_alphanumeric())
    })
    .prop_filter("not reserved", |s| {
        !RESERVED_IDS.iter().any(|w| s.eq_ignore_ascii_case(w))
    })
}

fn raw(
    tenant: &str,
    agent: &Option<String>,
    conversation: &Option<String>,
    collection: &Option<String>,
) -> Ctx<tenant_core::Unvalidated> {
    let mut raw = Ctx::unvalidated().with_tenant(tenant);
    if let Some(a) = agent {
        raw = raw.with_agent(a.as_str());
    }
    if let Some(c) = conversation {
        raw = raw.with_conversation(c.as_str());
    }
    if let Some(l) = collection {
        raw = raw.with_collection(l.as_str());
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_accepted_identifier_is_accepted_unchanged(id in identifier()) {
        let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant(id.as_str()).validate().unwrap();
        prop_assert_eq!(ctx.tenant_id().as_str(), id.as_str());
    }

    #[test]
    fn no_other_spelling_of_an_accepted_identifier_is_accepted(
        id in identifier(),
        flips in proptest::collection::vec(any::<bool>(), 64),
    ) {
        // Upper-case some of its letters (at least one, if it has any):
        // the result is refused, with the first upper-case letter named.
        let mut variant: Vec<u8> = id.bytes().zip(&flips).map(|(b, &up)| {
            if up { b.to_ascii_uppercase() } else { b }
        }).collect();
        if let Some(first) = variant.iter().position(u8::is_ascii_lowercase) {
            if !variant.iter().any(u8::is_ascii_uppercase) {
                variant[first] = variant[first].to_ascii_uppercase();
            }
        }
        let variant = String::from_utf8(variant).unwrap();
        if variant == id {
            // Digits and punctuation only: nothing to change.
            prop_assert!(!id.bytes().any(|b| b.is_ascii_alphabetic()));
        } else {
            let index = variant.bytes().position(|b| b.is_ascii_uppercase()).unwrap();
            let ch = char::from(variant.as_bytes()[index]);
            prop_assert_eq!(
                Ctx::unvalidated().with_tenant(variant.as_str()).validate::<Validated>().unwrap_err(),
                tenant_core::ContextError::TenantInvalid(tenant_core::IdError::UpperCase { index, ch })
            );
        }
    }

    #[test]
    fn through_headers(
        tenant in identifier(),
        agent in proptest::option::of(identifier()),
        conversation in proptest::option::of(identifier()),
        collection in proptest::option::of(identifier()),
    ) {
        let sent: Ctx<Validated> = raw(&tenant, &agent, &conversation, &collection).validate().unwrap();
        let mut headers = HeaderMap::new();
        inject(&sent, &mut headers);
        let got = extract(&headers).unwrap();
        prop_assert_eq!(got.raw_tenant(), Some(tenant.as_str()));
        prop_assert_eq!(got.raw_agent(), agent.as_deref());
        prop_assert_eq!(got.raw_conversation(), conversation.as_deref());
        prop_assert_eq!(got.raw_collection(), collection.as_deref());
        prop_assert_eq!(got.validate::<Validated>().unwrap(), sent);
    }

    #[test]
    fn through_the_envelope(
        tenant in identifier(),
        agent in proptest::option::of(identifier()),
        conversation in proptest::option::of(identifier()),
        collection in proptest::option::of(identifier()),
        payload in any::<u64>(),
    ) {
        let sent: Ctx<Validated> = raw(&tenant, &agent, &conversation, &collection).validate().unwrap();
        let message = serde_json::to_string(&Envelope::new(&sent, payload)).unwrap();
        let envelope: Envelope<u64> = serde_json::from_str(&message).unwrap();
        prop_assert_eq!(envelope.context().tenant.as_deref(), Some(tenant.as_str()));
        prop_assert_eq!(envelope.context().agent.as_deref(), agent.as_deref());
        prop_assert_eq!(envelope.context().conversation.as_deref(), conversation.as_deref());
        prop_assert_eq!(envelope.context().collection.as_deref(), collection.as_deref());
        let (got, got_payload) = envelope.open::<Validated>().unwrap();
        prop_assert_eq!(got, sent);
        prop_assert_eq!(got_payload, payload);
    }

    #[test]
    fn through_the_key_helper(t1 in identifier(), t2 in identifier(), name in identifier()) {
        let c1: Ctx<Validated> = Ctx::unvalidated().with_tenant(t1.as_str()).validate().unwrap();
        let c2: Ctx<Validated> = Ctx::unvalidated().with_tenant(t2.as_str()).validate().unwrap();
        let k1 = c1.key(&name);
        prop_assert_eq!(k1.tenant(), t1.as_str());
        prop_assert_eq!(k1.name(), name.as_str());
        let prefix = format!("t{}:{}:", t1.len(), t1);
        prop_assert!(k1.as_str().starts_with(&prefix));
        let k2 = c2.key(&name);
        prop_assert_eq!(k1.as_str() == k2.as_str(), t1 == t2);
        // Moving text between the tenant and the name never gives the same key.
        let swapped = c2.key(&format!("{t1}:{name}"));
        prop_assert_ne!(k1.as_str(), swapped.as_str());
    }
}
