//! Worker envelopes: the context travels with the message and is validated
//! on receipt; ambient state in the worker is never used.
#![cfg(feature = "serde")]

use serde::{Deserialize, Serialize};
use tenant_core::envelope::{Envelope, RawContext};
use tenant_core::{current, ContextError, Ctx, NoAgent, Validated, WithAgent, WithConversation};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    document: String,
    pages: u32,
}

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated().with_tenant(tenant).validate().unwrap()
}

#[test]
fn a_message_round_trips_with_its_context() {
    let sent: Ctx<Validated<WithAgent>> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_agent("agent-7")
        .with_collection("docs")
        .validate()
        .unwrap();
    let job = Job {
        document: "report.pdf".into(),
        pages: 3,
    };
    let message = serde_json::to_string(&Envelope::new(&sent, job.clone())).unwrap();
    assert_eq!(
        message,
        r#"{"context":{"tenant":"acme","agent":"agent-7","collection":"docs"},"payload":{"document":"report.pdf","pages":3}}"#
    );
    let received: Envelope<Job> = serde_json::from_str(&message).unwrap();
    let (ctx, payload) = received.open::<Validated<WithAgent>>().unwrap();
    assert_eq!(ctx, sent);
    assert_eq!(ctx.agent_id().as_str(), "agent-7");
    assert_eq!(payload, job);
}

#[test]
fn a_bad_context_in_a_message_is_refused_with_its_code() {
    let cases = [
        (r#"{"context":{},"payload":1}"#, "TENANT_REQUIRED"),
        (
            r#"{"context":{"tenant":"default"},"payload":1}"#,
            "TENANT_INVALID",
        ),
        (
            r#"{"context":{"tenant":"acme\u0000"},"payload":1}"#,
            "TENANT_INVALID",
        ),
        (
            r#"{"context":{"tenant":"acme","agent":"a b"},"payload":1}"#,
            "AGENT_INVALID",
        ),
        (
            r#"{"context":{"tenant":"acme","conversation":""},"payload":1}"#,
            "CONVERSATION_INVALID",
        ),
        (
            r#"{"context":{"tenant":"acme","collection":"\u212Aelvin"},"payload":1}"#,
            "COLLECTION_INVALID",
        ),
    ];
    for (message, code) in cases {
        let e: Envelope<u8> = serde_json::from_str(message).unwrap();
        assert_eq!(e.open::<Validated>().unwrap_err().code(), code, "{message}");
    }
    let e: Envelope<u8> =
        serde_json::from_str(r#"{"context":{"tenant":"acme"},"payload":1}"#).unwrap();
    assert_eq!(
        e.open::<Validated<NoAgent, WithConversation>>()
            .unwrap_err(),
        ContextError::ConversationRequired
    );
}

#[test]
fn a_message_without_a_context_object_does_not_deserialize() {
    assert!(serde_json::from_str::<Envelope<u8>>(r#"{"payload":1}"#).is_err());
}

#[tokio::test]
async fn the_worker_ignores_its_ambient_context() {
    // The worker runs inside some other tenant's scope (a bug elsewhere, or
    // a loop that handles several tenants): the message's tenant wins.
    let message = serde_json::to_string(&Envelope::new(&ctx("acme"), 5_u32)).unwrap();
    let seen = ctx("globex")
        .scope(async {
            let e: Envelope<u32> = serde_json::from_str(&message).unwrap();
            e.open_scoped(|ctx: Ctx<Validated>, n| async move {
                let cur = current().unwrap();
                (
                    ctx.tenant_id().as_str().to_owned(),
                    cur.tenant_id().as_str().to_owned(),
                    n,
                )
            })
            .await
            .unwrap()
        })
        .await;
    assert_eq!(seen, ("acme".to_owned(), "acme".to_owned(), 5));

    // And a message without a tenant fails even though one is in scope.
    let e: Envelope<u32> = serde_json::from_str(r#"{"context":{},"payload":5}"#).unwrap();
    let mut ran = false;
    let res = ctx("globex")
        .scope(e.open_scoped(|_: Ctx<Validated>, _| async { ran = true }))
        .await;
    assert_eq!(res.unwrap_err(), ContextError::TenantRequired);
    assert!(!ran, "the handler must not run without a valid context");
}

#[tokio::test]
async fn open_with_runs_the_application_validator() {
    let only_acme = |ctx: Ctx<Validated>| async move {
        if ctx.tenant_id().as_str() == "acme" {
            Ok(())
        } else {
            Err(ContextError::forbidden("tenant is not active"))
        }
    };
    let ok = Envelope::new(&ctx("acme"), ())
        .open_with::<Validated>(&only_acme)
        .await;
    assert!(ok.is_ok());
    let no = Envelope::new(&ctx("globex"), ())
        .open_with::<Validated>(&only_acme)
        .await;
    assert_eq!(no.unwrap_err().code(), "TENANT_FORBIDDEN");
}

#[tokio::test]
async fn into_incoming_gives_the_raw_context_for_with_context_handlers() {
    let raw = RawContext {
        tenant: Some("acme".into()),
        agent: Some("a1".into()),
        ..RawContext::default()
    };
    let message = serde_json::json!({ "context": raw, "payload": "p" }).to_string();
    let e: Envelope<String> = serde_json::from_str(&message).unwrap();
    assert_eq!(e.context(), &raw);
    assert_eq!(e.payload(), "p");
    let (incoming, payload) = e.into_incoming();
    let ctx: Ctx<Validated<WithAgent>> = incoming
        .scope(async { tenant_core::Incoming::current().unwrap().validate().await })
        .await
        .unwrap();
    assert_eq!(
        (ctx.to_string(), payload),
        ("[t:acme a:a1]".to_owned(), "p".to_owned())
    );
}
