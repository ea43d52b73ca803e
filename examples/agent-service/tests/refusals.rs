//! Every refused request is logged once, at `INFO`, as `request refused`
//! with its stable code, its status and, when the request got as far as
//! resolving one, its tenant (for a `403` mismatch, the token's: the
//! caller who tried): whether the context layer refused it (`401`,
//! `403`), the rate limit (`429`), a handler (`400`), the router (`404`)
//! or hyper's parser (`431`, `400`). A request that is served logs no such
//! line.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agent_service::{start_with, Config, Limits};
use common::request;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One captured event: its level and its fields (`message` included).
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// The events of this test binary, from every thread: one global
/// subscriber, installed before the service starts.
fn captured() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let subscriber = tracing_subscriber::registry()
                .with(capture.clone())
                .with(tracing_subscriber::filter::LevelFilter::TRACE);
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            capture
        })
        .clone()
}

impl Capture {
    /// The `request refused` events so far.
    fn refused(&self) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.fields.get("message").map(String::as_str) == Some("request refused"))
            .cloned()
            .collect()
    }

    /// The `retry_after_s` of the `request refused` events with `code`.
    fn retry_after(&self, code: &str) -> Vec<Option<String>> {
        self.refused()
            .iter()
            .filter(|e| e.fields.get("code").map(String::as_str) == Some(code))
            .map(|e| e.fields.get("retry_after_s").cloned())
            .collect()
    }

    /// The `request refused` events so far: level, code, status, tenant.
    fn refusals(&self) -> Vec<(Level, String, String, Option<String>)> {
        self.refused()
            .into_iter()
            .map(|e| {
                (
                    e.level,
                    e.fields.get("code").cloned().unwrap_or_default(),
                    e.fields.get("status").cloned().unwrap_or_default(),
                    e.fields.get("tenant").cloned(),
                )
            })
            .collect()
    }
}

const MESSAGES: &str = "/api/agents/agent-7/messages";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_request_is_logged_once_with_its_code_and_tenant() {
    let capture = captured();
    let limits = Limits {
        tenant_rate_per_second: 1,
        tenant_burst: 2,
        ..Limits::default()
    };
    let service = start_with(Config {
        limits,
        events: false,
        ..Config::new("127.0.0.1:0")
    })
    .await
    .expect("the service starts");
    let addr = service.addr();
    let acme = format!("Bearer {}", service.token("acme", None).unwrap());
    let globex = format!("Bearer {}", service.token("globex", None).unwrap());
    let acme_agent_7 = format!("Bearer {}", service.token("acme", Some("agent-7")).unwrap());
    let before = capture.refusals().len();

    // (status, code, tenant) of each refusal, in the order sent.
    let mut expected: Vec<(u16, &str, Option<&str>)> = Vec::new();
    let mut expected_parser: Vec<&str> = Vec::new();
    let mut send =
        async |method: &str,
               path: &str,
               headers: &[(&str, &str)],
               body: Option<&str>,
               refusal: Option<(u16, &'static str, Option<&'static str>)>| {
            let reply = request(addr, method, path, headers, body).await;
            match refusal {
                Some((status, code, tenant)) => {
                    assert_eq!(reply.status, status, "{}", reply.body);
                    assert_eq!(reply.json()["error"]["code"], code, "{}", reply.body);
                    expected.push((status, code, tenant));
                }
                None => assert!(reply.status < 300, "{}: {}", reply.status, reply.body),
            }
        };

    // The context layer: no token (a tenant header alone proves nothing),
    // then a header that names another tenant than the token. Neither
    // resolves a tenant.
    send(
        "GET",
        MESSAGES,
        &[("X-Tenant-ID", "acme"), ("X-Conversation-ID", "c")],
        None,
        Some((401, "TOKEN_MISSING", None)),
    )
    .await;
    send(
        "GET",
        MESSAGES,
        &[
            ("Authorization", &acme),
            ("X-Tenant-ID", "globex"),
            ("X-Conversation-ID", "c"),
        ],
        None,
        // The token's tenant: the caller who tried another tenant's header.
        Some((403, "TENANT_MISMATCH", Some("acme"))),
    )
    .await;
    // An agent header that is not the token's agent.
    send(
        "GET",
        MESSAGES,
        &[
            ("Authorization", &acme_agent_7),
            ("X-Agent-ID", "agent-9"),
            ("X-Conversation-ID", "c"),
        ],
        None,
        Some((403, "AGENT_MISMATCH", Some("acme"))),
    )
    .await;
    // A handler, for a resolved tenant.
    send(
        "POST",
        MESSAGES,
        &[("Authorization", &acme), ("X-Conversation-ID", "c")],
        Some(r#"{"content":"   "}"#),
        Some((400, "CONTENT_EMPTY", Some("acme"))),
    )
    .await;
    // The router, before any context.
    send("GET", "/nowhere", &[], None, Some((404, "NOT_FOUND", None))).await;
    // Served: no line.
    send(
        "GET",
        MESSAGES,
        &[("Authorization", &globex), ("X-Conversation-ID", "c")],
        None,
        None,
    )
    .await;
    // The rate limit: globex's burst is two; its third request in the
    // same second is refused.
    send(
        "GET",
        MESSAGES,
        &[("Authorization", &globex), ("X-Conversation-ID", "c")],
        None,
        None,
    )
    .await;
    send(
        "GET",
        MESSAGES,
        &[("Authorization", &globex), ("X-Conversation-ID", "c")],
        None,
        Some((429, "RATE_LIMITED", Some("globex"))),
    )
    .await;

    // Each line is written before its response is sent; give a straggler
    // (a second line, say) a moment to show up anyway.
    // Requests hyper's parser refuses, before any router: a head over its
    // limit (431) and a malformed header line (400).
    for raw in [
        format!(
            "GET {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        ),
        format!("GET {MESSAGES} HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(raw.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        let (status, code) = if raw.len() > 1 << 20 {
            ("431", "REQUEST_HEAD_TOO_LARGE")
        } else {
            ("400", "REQUEST_HEAD_INVALID")
        };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        expected_parser.push(code);
    }

    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut logged: Vec<_> = capture.refusals().split_off(before);
    // The parser's refusals carry no status field and no tenant.
    let parser: Vec<_> = logged.split_off(logged.len().saturating_sub(expected_parser.len()));
    assert_eq!(
        parser,
        expected_parser
            .iter()
            .map(|code| (Level::INFO, (*code).to_owned(), String::new(), None))
            .collect::<Vec<_>>()
    );
    let want: Vec<_> = expected
        .iter()
        .map(|(status, code, tenant)| {
            (
                Level::INFO,
                (*code).to_owned(),
                status.to_string(),
                tenant.map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(logged, want);
    // The 429's line says when the tenant is let in again.
    assert_eq!(capture.retry_after("RATE_LIMITED"), [Some("1".to_owned())]);
    service.stop().await.unwrap();
}
