//! The HTTP edge under hostile clients, over real HTTP on 127.0.0.1 against
//! the real service, each test on its own database of one throwaway
//! PostgreSQL (hardened mode): bad content is a 4xx before any I/O, a
//! database error is logged with its tenant and agent, slow clients and
//! slow handlers are cut off, every size is bounded, and ids have one
//! spelling.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agent_service::{start_with, Auth, Config, DatabaseConfig, Limits, Service};
use common::{call, contents, parse, request};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tenant_testing::{TestCluster, TestDatabase, APP_ROLE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

const MESSAGES: &str = "/api/agents/agent-7/messages";

/// Every test gives up after this long, whatever happens.
const TEST_BOUND: Duration = Duration::from_secs(60);

/// The service on a fresh database of the shared cluster, with `limits`;
/// the database handle gives the test the owner and superuser.
async fn start(limits: Limits) -> (Service, TestDatabase) {
    // Before any request: a handler that starts without a subscriber
    // opens no span, and its lines would lack their fields.
    captured_logs();
    let cluster = TestCluster::shared().await.expect("PostgreSQL starts");
    let db = cluster.create_database().await.expect("a database");
    let secret = [0x5a_u8; 32];
    db.install_guard(&secret).await.expect("the guard installs");
    let config = Config {
        database: DatabaseConfig::External {
            app_url: db.app_url().to_owned(),
            owner_url: Some(db.owner_url().to_owned()),
        },
        hardened: true,
        guard_secret: Some(secret.to_vec()),
        limits,
        // The edge's limits, not its authentication, are under test here:
        // the gateway mode keeps the raw requests short.
        auth: Auth::TrustedHeader,
        ..Config::new("127.0.0.1:0")
    };
    let service = start_with(config).await.expect("the service starts");
    (service, db)
}

fn conversation(tenant: &'static str) -> [(&'static str, &'static str); 2] {
    [("X-Tenant-ID", tenant), ("X-Conversation-ID", "conv-1")]
}

async fn post(addr: SocketAddr, tenant: &'static str, content: &str) -> (u16, Value) {
    let body = json!({ "content": content }).to_string();
    call(addr, "POST", MESSAGES, &conversation(tenant), Some(&body)).await
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no error code)")
}

/// Everything logged in this test binary, from the first call on.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_content_is_a_4xx_before_any_io_and_failures_are_logged_with_the_context() {
    timeout(TEST_BOUND, async {
        let (service, db) = start(Limits::default()).await;
        let addr = service.addr();

        let (status, body) = post(addr, "acme-logs", "hello").await;
        assert_eq!(status, 201, "{body}");

        // From now on every INSERT into the messages fails in the database.
        let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
        sqlx::raw_sql(&format!(
            "REVOKE INSERT ON tenant_memory_messages FROM \"{APP_ROLE}\""
        ))
        .execute(&mut owner)
        .await
        .unwrap();

        // A NUL character (which PostgreSQL text cannot store) and content
        // over the bound are refused before the handler reaches the
        // database: 4xx, not the 500 an INSERT would give now.
        let (status, body) = call(
            addr,
            "POST",
            MESSAGES,
            &conversation("acme-logs"),
            Some(r#"{"content":"hello\u0000world"}"#),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&body), "CONTENT_INVALID");
        // Empty or blank content is refused too.
        for empty in [r#"{"content":""}"#, r#"{"content":"  \n\t"}"#] {
            let (status, body) = call(
                addr,
                "POST",
                MESSAGES,
                &conversation("acme-logs"),
                Some(empty),
            )
            .await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(error_code(&body), "CONTENT_EMPTY");
        }
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("NUL") && message.contains("byte 5"),
            "{message}"
        );
        assert!(
            !message.contains("hello"),
            "the content is not echoed: {message}"
        );

        let (status, body) = post(addr, "acme-logs", &"x".repeat(32 * 1024 + 1)).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(error_code(&body), "CONTENT_TOO_LARGE");

        // Content that is fine reaches the database, which fails: 500, and
        // the log line says for whom.
        let (status, body) = post(addr, "acme-logs", "this one fails").await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(error_code(&body), "DATABASE_ERROR");
        assert!(
            !body.to_string().contains("permission"),
            "no database detail is sent: {body}"
        );

        // Only the first message was stored.
        let (status, body) = call(addr, "GET", MESSAGES, &conversation("acme-logs"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(contents(&body), ["hello"]);

        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");

    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = logs.lines().filter(|l| l.contains("acme-logs")).collect();
    let failure = ours
        .iter()
        .find(|l| l.contains("database error"))
        .unwrap_or_else(|| panic!("no database error logged for acme-logs:\n{logs}"));
    for field in [
        "tenant_id=\"acme-logs\"",
        "agent_id=\"agent-7\"",
        "conversation_id=\"conv-1\"",
        "permission denied",
    ] {
        assert!(failure.contains(field), "{field} missing from: {failure}");
    }
    // Every line written inside a request (stored, failed) names its
    // tenant and agent; none was written without them.
    for line in logs
        .lines()
        .filter(|l| l.contains("database error") || l.contains("message stored"))
    {
        assert!(
            line.contains("tenant_id=") && line.contains("agent_id="),
            "a request's log line without its context: {line}"
        );
    }
    assert!(ours.iter().any(|l| l.contains("message stored")), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_queries_get_the_json_envelope() {
    timeout(TEST_BOUND, async {
        let (service, _db) = start(Limits::default()).await;
        let addr = service.addr();
        let headers = conversation("acme");
        for (body, status, code) in [
            ("{not json", 400, "BODY_INVALID"),
            (r#"{"content":"\ud800"}"#, 400, "BODY_INVALID"), // a lone surrogate
            (r#"{"text":"no content field"}"#, 422, "BODY_INVALID"),
            (r#"{"content":42}"#, 422, "BODY_INVALID"),
            (r#"{"content":"hi","role":"admin"}"#, 400, "BAD_REQUEST"),
        ] {
            let (got, json) = call(addr, "POST", MESSAGES, &headers, Some(body)).await;
            assert_eq!((got, error_code(&json)), (status, code), "{body}: {json}");
        }
        // No JSON content type.
        let reply = request(
            addr,
            "POST",
            MESSAGES,
            &[
                ("X-Tenant-ID", "acme"),
                ("X-Conversation-ID", "conv-1"),
                ("Content-Type", "text/plain"),
            ],
            None,
        )
        .await;
        assert_eq!(reply.status, 415, "{}", reply.body);
        assert_eq!(error_code(&reply.json()), "BODY_NOT_JSON");

        for query in ["limit=abc", "limit=-1", "limit=99999999999", "before=x"] {
            let path = format!("{MESSAGES}?{query}");
            let (status, json) = call(addr, "GET", &path, &headers, None).await;
            assert_eq!(status, 400, "{query}: {json}");
            assert_eq!(error_code(&json), "QUERY_INVALID", "{query}");
        }

        // Paths and methods the service does not have, and a path segment
        // that is not percent-encoded UTF-8: the envelope too, not axum's
        // empty or plain-text answers.
        for (method, path, status, code) in [
            ("GET", "/api/nothing-here", 404, "NOT_FOUND"),
            ("GET", "/", 404, "NOT_FOUND"),
            ("PUT", MESSAGES, 405, "METHOD_NOT_ALLOWED"),
            ("PATCH", "/status", 405, "METHOD_NOT_ALLOWED"),
            ("GET", "/api/agents/%FF%FE/messages", 400, "PATH_INVALID"),
        ] {
            let reply = request(addr, method, path, &headers, None).await;
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
            assert_eq!(
                error_code(&reply.json()),
                code,
                "{method} {path}: {}",
                reply.body
            );
        }
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// Sends a request head a line at a time, one line every 200 ms, without
/// ever finishing it; returns how long the server kept the connection.
async fn trickle_head(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rx, mut tx) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").await;
        for i in 0.. {
            sleep(Duration::from_millis(200)).await;
            if tx
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut got = Vec::new();
    // Read until the server closes (or resets) the connection.
    let read = timeout(Duration::from_secs(10), rx.read_to_end(&mut got)).await;
    writer.abort();
    assert!(read.is_ok(), "a trickling client was never cut off");
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 2"),
        "a trickled request was served: {}",
        String::from_utf8_lossy(&got)
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_trickle_their_headers_are_cut_off() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();

        let trickling: Vec<_> = (0..50).map(|_| tokio::spawn(trickle_head(addr))).collect();
        // A client that connects and sends nothing at all.
        let silent = tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
                .await
                .expect("a silent client was never cut off")
                .ok();
            started.elapsed()
        });

        // Meanwhile, a client that sends its request at once is served.
        sleep(Duration::from_millis(300)).await;
        let (status, body) = call(addr, "GET", "/status", &[], None).await;
        assert_eq!(status, 200, "{body}");

        for handle in trickling {
            let held = handle.await.unwrap();
            assert!(
                held >= Duration::from_millis(900) && held < Duration::from_secs(6),
                "a trickling client was held for {held:?}, with a 1 s header-read timeout"
            );
        }
        let held = silent.await.unwrap();
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(6),
            "a silent client was held for {held:?}"
        );
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// The largest send buffer the kernel grows a TCP socket to.
fn max_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 * 1024 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_response_is_cut_off() {
    timeout(TEST_BOUND, async {
        // A response three times larger than the kernel lets a socket's
        // send buffer grow, or the server never waits on the client at all.
        let buffered = max_send_buffer();
        let content_bytes = 256 * 1024;
        let count = (3 * buffered).div_ceil(content_bytes);
        let limits = Limits {
            send_timeout: Duration::from_secs(1),
            max_body_bytes: 2 * content_bytes,
            max_content_bytes: content_bytes,
            max_page: u32::try_from(count).unwrap(),
            max_response_bytes: usize::MAX,
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();
        let content = "r".repeat(content_bytes);
        for _ in 0..count {
            let (status, body) = post(addr, "acme", &content).await;
            assert_eq!(status, 201, "{body}");
        }
        let path = format!("{MESSAGES}?limit={count}");
        let full = request(addr, "GET", &path, &conversation("acme"), None).await;
        assert_eq!(full.status, 200);
        assert!(full.body.len() > 3 * buffered, "{} bytes", full.body.len());

        // The same request from a client with a small window that then
        // reads nothing for three times the send timeout.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\n\
             X-Conversation-ID: conv-1\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The stall starts once the response does: on a loaded machine the
        // query and the serialisation of 12 MB can take longer than the
        // stall itself, and a client that reads a response still being
        // produced is not slow.
        let mut got = vec![0u8; 1];
        timeout(Duration::from_secs(60), stream.read_exact(&mut got))
            .await
            .expect("the response starts within 60 s")
            .unwrap();
        sleep(Duration::from_secs(3)).await;
        let _ = timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 16384];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(
            got.len() < full.body.len() / 2,
            "the server waited for the client: {} of {} bytes arrived",
            got.len(),
            full.body.len()
        );
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_the_request_timeout_is_408() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            request_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();

        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut rx, mut tx) = stream.into_split();
        let writer = tokio::spawn(async move {
            let head = format!(
                "POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\n\
                 X-Conversation-ID: conv-1\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"content\":\""
            );
            let _ = tx.write_all(head.as_bytes()).await;
            // 88 more bytes at 10 a second: 9 s, against a 1 s timeout.
            for _ in 0..88 {
                sleep(Duration::from_millis(100)).await;
                if tx.write_all(b"a").await.is_err() {
                    break;
                }
            }
        });
        let mut raw = Vec::new();
        timeout(Duration::from_secs(10), rx.read_to_end(&mut raw))
            .await
            .expect("answered")
            .ok();
        let held = started.elapsed();
        writer.abort();
        let reply = parse(&raw);
        assert_eq!(reply.status, 408, "{}", reply.body);
        assert_eq!(error_code(&reply.json()), "REQUEST_TIMEOUT");
        assert!(reply.head.contains("connection: close"), "{}", reply.head);
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(6),
            "answered after {held:?}"
        );

        // Nothing was stored.
        let (status, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["messages"], json!([]));
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_past_the_request_timeout_is_cancelled_with_503() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            request_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (service, db) = start(limits).await;
        let addr = service.addr();
        let (status, _) = post(addr, "acme", "before the lock").await;
        assert_eq!(status, 201);

        // The owner locks the table: every handler that reads it waits.
        let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE tenant_memory_messages IN ACCESS EXCLUSIVE MODE")
            .execute(&mut owner)
            .await
            .unwrap();
        let started = Instant::now();
        let (status, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        let held = started.elapsed();
        assert_eq!(status, 503, "{body}");
        assert_eq!(error_code(&body), "RESPONSE_TIMEOUT");
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(6),
            "answered after {held:?}"
        );
        sqlx::raw_sql("ROLLBACK").execute(&mut owner).await.unwrap();

        // The cancelled request left nothing behind: the service answers.
        let (status, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(contents(&body), ["before the lock"]);
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_before_it_is_read() {
    timeout(TEST_BOUND, async {
        let (service, _db) = start(Limits::default()).await;
        let addr = service.addr();
        let max = service.limits().max_body_bytes;

        // Announced: refused on the head alone, the 10 MB never sent.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\n\
             X-Conversation-ID: conv-1\r\nContent-Type: application/json\r\n\
             Content-Length: 10000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .expect("answered without the body")
            .ok();
        let reply = parse(&raw);
        assert_eq!(reply.status, 413, "{}", reply.body);
        assert_eq!(error_code(&reply.json()), "BODY_TOO_LARGE");

        // Chunked, so not announced: refused once it passes the limit.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-Tenant-ID: acme\r\n\
             X-Conversation-ID: conv-1\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let chunk = "a".repeat(4096);
        for _ in 0..=(max / 4096) {
            req.push_str(&format!("1000\r\n{chunk}\r\n"));
        }
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
            .await
            .expect("answered")
            .ok();
        let reply = parse(&raw);
        assert_eq!(reply.status, 413, "{}", reply.body);
        assert_eq!(error_code(&reply.json()), "BODY_TOO_LARGE");

        // Just under the limit is a body like any other.
        let content = "b".repeat(service.limits().max_content_bytes);
        let (status, body) = post(addr, "acme", &content).await;
        assert_eq!(status, 201, "{body}");
        let (_, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(contents(&body), [content]);
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_bounded_and_page_through_with_before() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            default_page: 3,
            max_page: 5,
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();
        let headers = conversation("acme");
        let mut ids = Vec::new();
        for i in 0..7 {
            let (status, body) = post(addr, "acme", &format!("m{i}")).await;
            assert_eq!(status, 201, "{body}");
            ids.push(body["id"].as_i64().unwrap());
        }
        let page = |query: String| async move {
            let (status, body) =
                call(addr, "GET", &format!("{MESSAGES}{query}"), &headers, None).await;
            assert_eq!(status, 200, "{query}: {body}");
            (contents(&body), body["next_before"].clone())
        };

        // The default page: the newest three, oldest first.
        assert_eq!(
            page(String::new()).await,
            (vec!["m4".into(), "m5".into(), "m6".into()], json!(ids[4]))
        );
        // Following `next_before` to the end.
        assert_eq!(
            page(format!("?before={}", ids[4])).await,
            (vec!["m1".into(), "m2".into(), "m3".into()], json!(ids[1]))
        );
        assert_eq!(
            page(format!("?before={}", ids[1])).await,
            (vec!["m0".into()], Value::Null)
        );
        // A page that ends exactly at the first message is the last one.
        assert_eq!(
            page(format!("?before={}", ids[3])).await,
            (vec!["m0".into(), "m1".into(), "m2".into()], Value::Null)
        );
        // The largest page allowed.
        let (five, next) = page("?limit=5".into()).await;
        assert_eq!(five, ["m2", "m3", "m4", "m5", "m6"]);
        assert_eq!(next, json!(ids[2]));

        for limit in ["0", "6", "500"] {
            let path = format!("{MESSAGES}?limit={limit}");
            let (status, body) = call(addr, "GET", &path, &headers, None).await;
            assert_eq!(status, 400, "limit={limit}: {body}");
            assert_eq!(error_code(&body), "LIMIT_INVALID");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("between 1 and 5"));
        }
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_never_passes_the_size_limit() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            max_content_bytes: 2048,
            max_response_bytes: 8192,
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();
        let headers = conversation("acme");
        // 12 messages of up to 2 KiB; control characters grow sixfold in
        // JSON (`\u0001`), so the bound is on the body, not the content.
        let mut sent = Vec::new();
        for i in 0..12 {
            let content = if i % 3 == 0 {
                format!("{i:02}{}", "\u{1}".repeat(300))
            } else {
                format!("{i:02}{}", "x".repeat(2000))
            };
            let (status, body) = post(addr, "acme", &content).await;
            assert_eq!(status, 201, "{body}");
            sent.push(content);
        }

        let mut received = Vec::new();
        let mut query = "?limit=100".to_owned();
        let mut pages = 0;
        loop {
            let reply = request(addr, "GET", &format!("{MESSAGES}{query}"), &headers, None).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(
                reply.body.len() <= 8192,
                "a {} byte response, over the 8192 byte limit",
                reply.body.len()
            );
            let body = reply.json();
            let page = contents(&body);
            assert!(!page.is_empty());
            received.splice(0..0, page);
            pages += 1;
            match body["next_before"].as_i64() {
                Some(before) => query = format!("?limit=100&before={before}"),
                None => break,
            }
        }
        assert!(
            pages >= 3,
            "12 messages of ~2 KiB in 8 KiB pages: {pages} pages"
        );
        assert_eq!(received, sent, "every message exactly once, in order");
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_message_over_the_content_limit_is_listed_without_its_content() {
    timeout(TEST_BOUND, async {
        let (service, db) = start(Limits::default()).await;
        let addr = service.addr();
        // A 1.9 MB message, stored before the service had a content limit
        // (here by the superuser, past RLS).
        let mut admin = PgConnection::connect(db.admin_url()).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO tenant_memory_messages (tenant_id, agent_id, conversation_id, role, content) \
             VALUES ('acme', 'agent-7', 'conv-1', 'user', repeat('x', 1900000))",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let (status, _) = post(addr, "acme", "small").await;
        assert_eq!(status, 201);

        let reply = request(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.len() < 1024, "{} bytes", reply.body.len());
        let body = reply.json();
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{body}");
        assert_eq!(messages[0]["content"], Value::Null);
        assert_eq!(messages[0]["content_too_large"], true);
        assert_eq!(messages[1]["content"], "small");
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_have_one_spelling_and_errors_name_their_field() {
    timeout(TEST_BOUND, async {
        let (service, _db) = start(Limits::default()).await;
        let addr = service.addr();
        let (status, _) = post(addr, "acme", "hello").await;
        assert_eq!(status, 201);

        // `ACME` is not another spelling of `acme`: it is refused, for
        // every id, wherever it comes from.
        for (path, headers, code) in [
            (MESSAGES, [("X-Tenant-ID", "ACME"), ("X-Conversation-ID", "conv-1")], "TENANT_INVALID"),
            (MESSAGES, [("X-Tenant-ID", "Acme"), ("X-Conversation-ID", "conv-1")], "TENANT_INVALID"),
            ("/api/agents/Agent-7/messages", conversation("acme"), "AGENT_INVALID"),
            (MESSAGES, [("X-Tenant-ID", "acme"), ("X-Conversation-ID", "CONV-1")], "CONVERSATION_INVALID"),
        ] {
            let (status, body) = call(addr, "GET", path, &headers, None).await;
            assert_eq!(status, 400, "{path} {headers:?}: {body}");
            assert_eq!(error_code(&body), code);
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("upper-case letter"), "{message}");
        }
        let (status, body) = post(addr, "ACME", "hello from ACME").await;
        assert_eq!((status, error_code(&body)), (400, "TENANT_INVALID"));
        let (_, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(contents(&body), ["hello"]);

        // A reserved word is said of the field it was sent as.
        let (status, body) = call(addr, "GET", "/api/agents/default/messages", &conversation("acme"), None).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"],
            json!({"code": "AGENT_INVALID", "message": "the agent id is the reserved word `default`, which never names a real agent"})
        );
        let (status, body) = call(
            addr,
            "GET",
            MESSAGES,
            &[("X-Tenant-ID", "acme"), ("X-Conversation-ID", "null")],
            None,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"],
            json!({"code": "CONVERSATION_INVALID", "message": "the conversation id is the reserved word `null`, which never names a real conversation"})
        );
        let (status, body) = call(addr, "GET", MESSAGES, &conversation("default"), None).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["message"],
            "the tenant id is the reserved word `default`, which never names a real tenant"
        );
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

/// The `Retry-After` of a reply's head, in seconds.
fn retry_after(head: &str) -> Option<u64> {
    head.lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_rate_gets_429_and_the_others_do_not() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            tenant_rate_per_second: 1,
            tenant_burst: 2,
            ..Limits::default()
        };
        let (service, _db) = start(limits).await;
        let addr = service.addr();
        for _ in 0..2 {
            let (status, body) = call(addr, "GET", MESSAGES, &conversation("acme"), None).await;
            assert_eq!(status, 200, "{body}");
        }
        let reply = request(addr, "GET", MESSAGES, &conversation("acme"), None).await;
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert_eq!(error_code(&reply.json()), "RATE_LIMITED");
        assert!(
            retry_after(&reply.head).is_some_and(|s| (1..=2).contains(&s)),
            "{}",
            reply.head
        );
        // globex is not slowed down by acme's flood.
        for _ in 0..2 {
            let (status, body) = call(addr, "GET", MESSAGES, &conversation("globex"), None).await;
            assert_eq!(status, 200, "{body}");
        }
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_share_of_the_pool_gets_429_tenant_busy() {
    timeout(TEST_BOUND, async {
        let limits = Limits {
            tenant_connections: 1,
            tenant_wait: Duration::from_millis(300),
            request_timeout: Duration::from_secs(20),
            ..Limits::default()
        };
        let (service, db) = start(limits).await;
        let addr = service.addr();
        // The owner locks the table: every acme request holds its
        // connection until the lock goes.
        let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE tenant_memory_messages IN ACCESS EXCLUSIVE MODE")
            .execute(&mut owner)
            .await
            .unwrap();
        // 10 connections: acme may burst to 9 (one kept free); the 10th
        // request waits its turn for 300 ms, then 429.
        let mut calls = Vec::new();
        for _ in 0..10 {
            calls.push(tokio::spawn(async move {
                request(addr, "GET", MESSAGES, &conversation("acme"), None).await
            }));
        }
        sleep(Duration::from_millis(1500)).await;
        sqlx::raw_sql("ROLLBACK").execute(&mut owner).await.unwrap();
        let mut busy = 0;
        for call in calls {
            let reply = call.await.unwrap();
            match reply.status {
                200 => {}
                429 => {
                    busy += 1;
                    assert_eq!(error_code(&reply.json()), "TENANT_BUSY");
                    assert_eq!(retry_after(&reply.head), Some(1), "{}", reply.head);
                }
                other => panic!("{other}: {}", reply.body),
            }
        }
        assert_eq!(
            busy, 1,
            "exactly the request past acme's share waited too long"
        );
        // The refusal was logged once, at INFO, with its code and tenant
        // (by the router, not a second time by the handler).
        let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("request refused") && l.contains("TENANT_BUSY"))
            .collect();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].contains("INFO") && lines[0].contains("tenant=\"acme\""),
            "{}",
            lines[0]
        );
        service.stop().await.unwrap();
    })
    .await
    .expect("bounded");
}
