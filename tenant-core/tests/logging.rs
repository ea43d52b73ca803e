//! The `tenant_context` span carries the context's fields; the log prefix
//! shows the current context.

use std::sync::{Arc, Mutex};

use tenant_core::{log_prefix, Ctx, Validated, NO_CONTEXT_PREFIX};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A span as seen by the subscriber: name, level, recorded fields.
type SeenSpan = (String, tracing::Level, Vec<(String, String)>);

/// The spans created, with their recorded fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SeenSpan>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let meta = attrs.metadata();
        self.0
            .lock()
            .unwrap()
            .push((meta.name().to_owned(), *meta.level(), fields));
    }
    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        // Spans are created one at a time in these tests: the last one is it.
        let mut spans = self.0.lock().unwrap();
        let last = spans.last_mut().expect("a span was created");
        values.record(&mut Fields(&mut last.2));
    }
}

fn spans_of(f: impl FnOnce()) -> Vec<SeenSpan> {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, f);
    let out = spans.0.lock().unwrap().clone();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_span_carries_the_tenant_and_each_present_field() {
    let ctx: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_conversation("conv-1")
        .validate()
        .unwrap();
    let spans = spans_of(|| {
        let _ = ctx.span();
    });
    assert_eq!(spans.len(), 1);
    let (name, level, mut fields) = spans[0].clone();
    assert_eq!(
        (name.as_str(), level),
        ("tenant_context", tracing::Level::INFO)
    );
    fields.sort();
    assert_eq!(
        fields,
        pairs(&[("conversation_id", "conv-1"), ("tenant_id", "acme")])
    );
}

#[test]
fn the_span_carries_all_four_fields_when_present() {
    let ctx: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_agent("agent-7")
        .with_conversation("c")
        .with_collection("docs")
        .validate()
        .unwrap();
    let spans = spans_of(|| {
        let _ = ctx.span();
    });
    let mut fields = spans[0].2.clone();
    fields.sort();
    assert_eq!(
        fields,
        pairs(&[
            ("agent_id", "agent-7"),
            ("collection_id", "docs"),
            ("conversation_id", "c"),
            ("tenant_id", "acme")
        ])
    );
}

#[tokio::test]
async fn the_log_prefix_follows_the_current_context() {
    assert_eq!(log_prefix(), NO_CONTEXT_PREFIX);
    assert_eq!(NO_CONTEXT_PREFIX, "[t:-]");
    let outer: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("acme")
        .with_agent("agent-7")
        .validate()
        .unwrap();
    let inner: Ctx<Validated> = Ctx::unvalidated()
        .with_tenant("globex")
        .with_collection("docs")
        .validate()
        .unwrap();
    outer
        .scope(async {
            assert_eq!(log_prefix(), "[t:acme a:agent-7]");
            inner
                .scope(async { assert_eq!(log_prefix(), "[t:globex l:docs]") })
                .await;
            assert_eq!(log_prefix(), "[t:acme a:agent-7]");
        })
        .await;
    assert_eq!(log_prefix(), "[t:-]");
}
