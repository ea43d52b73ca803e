//! Tenant-scoped keys begin with the tenant and never collide across tenants.

use std::collections::HashMap;

use tenant_core::{Ctx, Validated};

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated().with_tenant(tenant).validate().unwrap()
}

#[test]
fn a_key_names_its_tenant_first() {
    let key = ctx("acme").key("sessions");
    assert_eq!(key.as_str(), "t4:acme:sessions");
    assert_eq!(key.to_string(), "t4:acme:sessions");
    assert_eq!(key.tenant(), "acme");
    assert_eq!(key.name(), "sessions");
    assert_eq!(String::from(key.clone()), "t4:acme:sessions");
    assert_eq!(key.into_string(), "t4:acme:sessions");
}

#[test]
fn colons_in_tenant_or_name_do_not_make_keys_collide() {
    // Without the length prefix both would be "a:b:c".
    let k1 = ctx("a:b").key("c");
    let k2 = ctx("a").key("b:c");
    assert_ne!(k1.as_str(), k2.as_str());
    assert_eq!((k1.tenant(), k1.name()), ("a:b", "c"));
    assert_eq!((k2.tenant(), k2.name()), ("a", "b:c"));

    // A tenant whose text looks like a length prefix.
    let k3 = ctx("t1:a").key("x");
    let k4 = ctx("a").key("x");
    assert_ne!(k3.as_str(), k4.as_str());
    assert!(!k3.as_str().starts_with(k4.as_str()));
}

#[test]
fn every_split_of_the_same_text_gives_a_distinct_key() {
    // All ways of cutting "a:b:c:d:e" into a tenant and a name.
    let text = "a:b:c:d:e";
    let mut seen = HashMap::new();
    for cut in 1..text.len() {
        let (tenant, name) = text.split_at(cut);
        let key = ctx(tenant).key(name);
        assert_eq!((key.tenant(), key.name()), (tenant, name));
        if let Some(previous) = seen.insert(key.as_str().to_owned(), (tenant, name)) {
            panic!("{key} made from both {previous:?} and {:?}", (tenant, name));
        }
    }
    assert_eq!(seen.len(), text.len() - 1);
}
