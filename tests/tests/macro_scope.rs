//! What `#[with_context]` does around a body, without HTTP: the scope it
//! opens is closed again after the call, on error and on panic, and the
//! `tracing` span carries the context's fields.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tenant_core::{current, with_context, ContextError, Ctx, Incoming, Validated, WithAgent};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Runs as the agent it is given (a binding), so that its scope differs
/// from the caller's and restoring the caller's is observable.
#[with_context(tenant, agent = agent)]
async fn as_agent_of(agent: &str, fail: bool) -> Result<String, ContextError> {
    let inside = current()?.to_string();
    if fail {
        return Err(ContextError::forbidden("the body failed"));
    }
    Ok(inside)
}

#[with_context(tenant, agent = agent)]
async fn panics_as(agent: &str) -> Result<(), ContextError> {
    let _ = current()?;
    panic!("the body panicked");
}

/// Binds the tenant: only the tenant already in force is accepted.
#[with_context(tenant = tenant)]
async fn as_tenant(tenant: &str) -> Result<String, ContextError> {
    Ok(current()?.tenant_id().to_string())
}

fn outer_ctx(tenant: &str) -> Ctx {
    Ctx::unvalidated().with_tenant(tenant).validate().unwrap()
}

#[tokio::test]
async fn outer_context_is_restored_after_the_call() {
    let outer = outer_ctx("acme");
    outer
        .scope(async {
            assert_eq!(as_agent_of("a1", false).await.unwrap(), "[t:acme a:a1]");
            assert_eq!(current().unwrap().to_string(), "[t:acme]");
        })
        .await;
    assert_eq!(current().unwrap_err(), ContextError::NoContext);
}

#[tokio::test]
async fn outer_context_is_restored_when_the_body_fails() {
    let outer = outer_ctx("acme");
    outer
        .scope(async {
            let err = as_agent_of("a1", true).await.unwrap_err();
            assert_eq!(err.code(), "TENANT_FORBIDDEN");
            assert_eq!(current().unwrap().to_string(), "[t:acme]");
            // A validation failure never enters a scope at all.
            let err = as_agent_of("default", false).await.unwrap_err();
            assert_eq!(err.code(), "AGENT_INVALID");
            assert_eq!(current().unwrap().to_string(), "[t:acme]");
        })
        .await;
}

#[tokio::test]
async fn outer_context_is_restored_when_the_body_panics() {
    let outer = outer_ctx("acme");
    outer
        .scope(async {
            let caught = AssertUnwindSafe(panics_as("a1")).catch_unwind().await;
            assert!(caught.is_err(), "the body's panic reaches the caller");
            assert_eq!(current().unwrap().to_string(), "[t:acme]");
        })
        .await;
    assert!(current().is_err());
}

#[tokio::test]
async fn a_bound_tenant_must_be_the_enclosing_one() {
    let outer = outer_ctx("acme");
    outer
        .scope(async {
            assert_eq!(as_tenant("acme").await.unwrap(), "acme");
            let err = as_tenant("globex").await.unwrap_err();
            assert_eq!(err.code(), "TENANT_MISMATCH");
            assert_eq!(current().unwrap().tenant_id().as_str(), "acme");
        })
        .await;
}

#[tokio::test]
async fn without_any_context_the_call_fails_and_leaves_none() {
    let err = as_tenant_incoming().await.unwrap_err();
    assert_eq!(err, ContextError::TenantRequired);
    assert!(current().is_err());
}

#[with_context(tenant)]
async fn as_tenant_incoming() -> Result<(), ContextError> {
    Ok(())
}

/// Spans seen by the subscriber (name and recorded fields), and for each
/// event the name of the span it was logged in.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<SpanSeen>>>, Arc<Mutex<Vec<EventSeen>>>);

/// A span's name and fields.
type SpanSeen = (String, BTreeMap<String, String>);
/// An event's message and the name of the span it was logged in.
type EventSeen = (String, Option<String>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Captured
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0.lock().unwrap().push((name, fields));
    }
    fn on_record(&self, _id: &Id, _values: &Record<'_>, _ctx: Context<'_, S>) {}
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|s| s.name().to_owned());
        self.1.lock().unwrap().push((message, span));
    }
}

#[with_context(tenant, agent)]
async fn answer(question: &str, ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    tracing::info!("answering");
    Ok(format!("{} answers {question}", ctx.agent_id()))
}

#[test]
fn span_is_named_after_the_function_and_records_the_fields() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let raw = Ctx::unvalidated()
            .with_tenant("acme")
            .with_agent("agent-7")
            .with_collection("docs");
        let out = rt.block_on(Incoming::new(raw).scope(answer("why?")));
        assert_eq!(out.unwrap(), "agent-7 answers why?");
    });
    let spans = captured.0.lock().unwrap();
    let (_, fields) = spans
        .iter()
        .find(|(name, _)| name == "answer")
        .unwrap_or_else(|| panic!("no `answer` span among {spans:?}"));
    let expected: BTreeMap<String, String> = [
        ("tenant_id", "acme"),
        ("agent_id", "agent-7"),
        ("collection_id", "docs"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        *fields, expected,
        "a field the context lacks (conversation) is not recorded"
    );
}

#[test]
fn the_body_logs_inside_the_span() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
        rt.block_on(Incoming::new(raw).scope(answer("why?")))
            .unwrap();
    });
    let events = captured.1.lock().unwrap();
    assert_eq!(
        *events,
        vec![("answering".to_owned(), Some("answer".to_owned()))]
    );
}

#[with_context(tenant, agent = agent)]
async fn as_agent(agent: String) -> Result<String, ContextError> {
    Ok(current()?.to_string())
}

#[tokio::test]
async fn a_bound_field_inside_an_enclosing_context_keeps_its_tenant() {
    let outer: Ctx = Ctx::unvalidated()
        .with_tenant("acme")
        .with_agent("agent-1")
        .validate()
        .unwrap();
    outer
        .scope(async {
            assert_eq!(
                as_agent("agent-2".to_owned()).await.unwrap(),
                "[t:acme a:agent-2]"
            );
            let err = as_agent("bad agent".to_owned()).await.unwrap_err();
            assert_eq!(err.code(), "AGENT_INVALID");
            assert_eq!(current().unwrap().to_string(), "[t:acme a:agent-1]");
        })
        .await;
}

#[with_context(validate_tenant = false)]
async fn public_view(ctx: tenant_core::Ctx<tenant_core::Unvalidated>) -> Option<String> {
    ctx.raw_tenant().map(str::to_owned)
}

#[tokio::test]
async fn a_public_function_sees_the_enclosing_context_as_raw_values() {
    assert_eq!(public_view().await, None);
    let outer = outer_ctx("acme");
    assert_eq!(outer.scope(public_view()).await.as_deref(), Some("acme"));
    let incoming = Incoming::new(Ctx::unvalidated().with_tenant("globex"));
    assert_eq!(
        incoming.scope(public_view()).await.as_deref(),
        Some("globex")
    );
}

/// Requires the agent: inside an enclosing context without one, it comes
/// from the incoming context — but only an incoming context of the same
/// tenant.
#[with_context(tenant, agent)]
async fn needs_agent(ctx: Ctx<Validated<WithAgent>>) -> Result<String, ContextError> {
    Ok(ctx.to_string())
}

#[tokio::test]
async fn a_missing_field_comes_from_the_incoming_context_of_the_same_tenant() {
    let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme").with_agent("a1"));
    let got = incoming
        .scope(outer_ctx("acme").scope(needs_agent()))
        .await
        .unwrap();
    assert_eq!(got, "[t:acme a:a1]");
}

#[tokio::test]
async fn a_missing_field_is_never_taken_from_another_tenants_request() {
    // A handler for acme deliberately switches to globex; a helper that
    // needs an agent must not act for globex with acme's agent.
    let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme").with_agent("a1"));
    let err = incoming
        .scope(outer_ctx("globex").scope(needs_agent()))
        .await
        .unwrap_err();
    assert_eq!(err, ContextError::AgentRequired);
}

#[tokio::test]
async fn a_field_added_inside_an_enclosing_context_passes_the_validator() {
    let agents_of_acme = |ctx: Ctx<Validated>| async move {
        match ctx.agent_id_opt().map(|a| a.as_str()) {
            None | Some("a1") => Ok(()),
            Some(_) => Err(ContextError::forbidden("this agent is not acme's")),
        }
    };
    let incoming = Incoming::new(Ctx::unvalidated().with_tenant("acme").with_agent("a2"))
        .with_validator(Arc::new(agents_of_acme));
    let err = incoming
        .scope(outer_ctx("acme").scope(needs_agent()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_FORBIDDEN");
}

#[tokio::test]
async fn an_incoming_scope_is_a_request_boundary() {
    // A handler of acme makes an in-process request for globex (say
    // `router.oneshot(..)`): the inner handler is validated from that
    // request, not handed acme's context; acme's is back afterwards.
    let got = outer_ctx("acme")
        .scope(async {
            let request = Incoming::new(Ctx::unvalidated().with_tenant("globex").with_agent("g1"));
            let got = request.scope(needs_agent()).await;
            assert_eq!(current().unwrap().tenant_id().as_str(), "acme");
            got
        })
        .await
        .unwrap();
    assert_eq!(got, "[t:globex a:g1]");
}
