//! Extracting the raw context from HTTP headers and injecting a validated one.
#![cfg(feature = "http")]

use http::{HeaderMap, HeaderName, HeaderValue};
use tenant_core::http::{extract, inject, inject_current, HeaderNames};
use tenant_core::{ContextError, Ctx, Field, Validated, WithAgent};

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

#[test]
fn all_four_headers_are_read_case_insensitively() {
    let map = headers(&[
        ("X-Tenant-ID", b"acme"),
        ("x-agent-id", b"agent-7"),
        ("X-CONVERSATION-ID", b"conv_1"),
        ("X-Collection-Id", b"docs.v2"),
    ]);
    let raw = extract(&map).unwrap();
    assert_eq!(raw.raw_tenant(), Some("acme"));
    assert_eq!(raw.raw_agent(), Some("agent-7"));
    assert_eq!(raw.raw_conversation(), Some("conv_1"));
    assert_eq!(raw.raw_collection(), Some("docs.v2"));
    let ctx: Ctx<Validated<WithAgent>> = raw.validate().unwrap();
    assert_eq!(ctx.to_string(), "[t:acme a:agent-7 c:conv_1 l:docs.v2]");
}

#[test]
fn absent_headers_are_absent_fields_and_validation_requires_the_tenant() {
    let raw = extract(&headers(&[("x-agent-id", b"a1"), ("x-unrelated", b"1")])).unwrap();
    assert_eq!(raw.raw_tenant(), None);
    assert_eq!(raw.raw_agent(), Some("a1"));
    assert_eq!(raw.raw_conversation(), None);
    let err = raw.validate::<Validated>().unwrap_err();
    assert_eq!(err, ContextError::TenantRequired);
}

#[test]
fn values_are_kept_exactly_as_sent_for_validation_to_judge() {
    let raw = extract(&headers(&[("x-tenant-id", b"Default")])).unwrap();
    assert_eq!(raw.raw_tenant(), Some("Default"));
    assert_eq!(
        raw.validate::<Validated>().unwrap_err().code(),
        "TENANT_INVALID"
    );
    let raw = extract(&headers(&[("x-tenant-id", b"")])).unwrap();
    assert_eq!(raw.raw_tenant(), Some(""));
    assert_eq!(
        raw.validate::<Validated>().unwrap_err().code(),
        "TENANT_INVALID"
    );
}

#[test]
fn header_names_ignore_case_but_values_must_be_lower_case() {
    // `X-TENANT-ID` is the same header as `x-tenant-id` (HTTP), but `ACME`
    // is not another spelling of `acme`: it is kept as sent and refused, so
    // it can never reach a tenant of its own.
    for value in [&b"ACME"[..], b"Acme", b"acmE"] {
        let raw = extract(&headers(&[("X-TENANT-ID", value)])).unwrap();
        assert_eq!(raw.raw_tenant().map(str::as_bytes), Some(value));
        let err = raw.validate::<Validated>().unwrap_err();
        assert_eq!(err.code(), "TENANT_INVALID");
        assert!(
            matches!(err, ContextError::TenantInvalid(ref e) if e.code() == "ID_UPPER_CASE"),
            "{err:?}"
        );
    }
    let raw = extract(&headers(&[
        ("x-tenant-id", b"acme"),
        ("X-Agent-ID", b"Agent-7"),
    ]))
    .unwrap();
    let err = raw.validate::<Validated<WithAgent>>().unwrap_err();
    assert_eq!(err.code(), "AGENT_INVALID");
}

#[test]
fn a_repeated_header_is_refused() {
    for field in Field::ALL {
        let name = HeaderNames::default().get(field).as_str().to_owned();
        let map = headers(&[("x-tenant-id", b"acme"), (&name, b"one"), (&name, b"two")]);
        let err = extract(&map).unwrap_err();
        assert_eq!(
            err,
            ContextError::HeaderRepeated {
                header: name.clone().into()
            },
            "{field}"
        );
        assert_eq!(err.code(), "HEADER_REPEATED");
        assert_eq!(err.http_status(), 400);
    }
    // Even the same value twice: the request is still ambiguous by form.
    let map = headers(&[("x-tenant-id", b"acme"), ("x-tenant-id", b"acme")]);
    assert_eq!(extract(&map).unwrap_err().code(), "HEADER_REPEATED");
}

#[test]
fn a_comma_joined_value_is_refused() {
    for value in [&b"acme,globex"[..], b"acme, globex", b",acme", b"acme,"] {
        let err = extract(&headers(&[("x-tenant-id", value)])).unwrap_err();
        assert_eq!(
            err,
            ContextError::HeaderRepeated {
                header: "x-tenant-id".into()
            },
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    let err = extract(&headers(&[
        ("x-tenant-id", b"acme"),
        ("x-collection-id", b"a,b"),
    ]))
    .unwrap_err();
    assert_eq!(
        err,
        ContextError::HeaderRepeated {
            header: "x-collection-id".into()
        }
    );
}

#[test]
fn a_value_that_is_not_text_is_refused() {
    // Latin-1 'é', UTF-8 'é', UTF-8 Cyrillic 'а': none is visible ASCII.
    for value in [
        &b"acm\xe9"[..],
        "acmé".as_bytes(),
        "\u{430}cme".as_bytes(),
        b"\xff",
    ] {
        let err = extract(&headers(&[("x-tenant-id", value)])).unwrap_err();
        assert_eq!(
            err,
            ContextError::HeaderNotText {
                header: "x-tenant-id".into()
            }
        );
        assert_eq!(err.code(), "HEADER_NOT_TEXT");
    }
    let err = extract(&headers(&[
        ("x-tenant-id", b"acme"),
        ("x-agent-id", b"\x80"),
    ]))
    .unwrap_err();
    assert_eq!(
        err,
        ContextError::HeaderNotText {
            header: "x-agent-id".into()
        }
    );
}

#[test]
fn custom_header_names_are_used_for_both_directions() {
    let names = HeaderNames::default()
        .with(Field::Tenant, HeaderName::from_static("x-org"))
        .with(Field::Agent, HeaderName::from_static("x-bot"));
    let map = headers(&[
        ("x-org", b"acme"),
        ("x-bot", b"b1"),
        ("x-tenant-id", b"ignored"),
    ]);
    let raw = names.extract(&map).unwrap();
    assert_eq!(raw.raw_tenant(), Some("acme"));
    assert_eq!(raw.raw_agent(), Some("b1"));

    let ctx: Ctx<Validated> = raw.validate().unwrap();
    let mut out = HeaderMap::new();
    names.inject(&ctx, &mut out);
    assert_eq!(out["x-org"], "acme");
    assert_eq!(out["x-bot"], "b1");
    assert!(out.get("x-tenant-id").is_none());

    let err = names
        .extract(&headers(&[("x-org", b"a"), ("x-org", b"b")]))
        .unwrap_err();
    assert_eq!(
        err,
        ContextError::HeaderRepeated {
            header: "x-org".into()
        }
    );
}

#[test]
fn inject_replaces_stale_values_and_removes_absent_fields() {
    let ctx: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_conversation("c1")
        .validate()
        .unwrap();
    let mut out = headers(&[
        ("x-tenant-id", b"old"),
        ("x-tenant-id", b"older"),
        ("x-agent-id", b"stale-agent"),
        ("x-collection-id", b"stale"),
        ("accept", b"*/*"),
    ]);
    inject(&ctx, &mut out);
    assert_eq!(
        out.get_all("x-tenant-id").iter().collect::<Vec<_>>(),
        ["acme"]
    );
    assert_eq!(out["x-conversation-id"], "c1");
    assert!(out.get("x-agent-id").is_none());
    assert!(out.get("x-collection-id").is_none());
    assert_eq!(out["accept"], "*/*");
    // And what was injected reads back as the same context.
    assert_eq!(extract(&out).unwrap().validate::<Validated>().unwrap(), ctx);
}

#[tokio::test]
async fn inject_current_uses_the_context_in_scope_and_fails_outside() {
    let mut out = HeaderMap::new();
    assert_eq!(inject_current(&mut out), Err(ContextError::NoContext));
    assert!(out.is_empty());

    let ctx: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_agent("a1")
        .validate()
        .unwrap();
    ctx.scope(async { inject_current(&mut out).unwrap() }).await;
    assert_eq!(out["x-tenant-id"], "acme");
    assert_eq!(out["x-agent-id"], "a1");
}
