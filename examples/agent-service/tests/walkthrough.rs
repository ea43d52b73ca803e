//! The README's walkthrough, over real HTTP against the real service on a
//! throwaway PostgreSQL: two tenants using the same agent and conversation
//! ids each read only their own messages; a missing tenant is 400
//! `TENANT_REQUIRED`; `default` is 400 `TENANT_INVALID`.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("receive");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn contents(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_same_ids_each_see_only_their_own() {
    let service = agent_service::start("127.0.0.1:0")
        .await
        .expect("service starts");
    let addr = service.addr();
    let path = "/api/agents/agent-7/messages";

    for (tenant, text) in [("acme", "hello from acme"), ("globex", "hello from globex")] {
        let (status, body) = call(
            addr,
            "POST",
            path,
            &[("X-Tenant-ID", tenant), ("X-Conversation-ID", "conv-1")],
            Some(&format!(r#"{{"content":"{text}"}}"#)),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["tenant"], tenant);
        assert_eq!(body["agent"], "agent-7");
        assert_eq!(body["conversation"], "conv-1");
    }

    let headers = |t| [("X-Tenant-ID", t), ("X-Conversation-ID", "conv-1")];
    let (status, acme) = call(addr, "GET", path, &headers("acme"), None).await;
    assert_eq!(status, 200, "{acme}");
    assert_eq!(contents(&acme), ["hello from acme"]);
    let (status, globex) = call(addr, "GET", path, &headers("globex"), None).await;
    assert_eq!(status, 200, "{globex}");
    assert_eq!(contents(&globex), ["hello from globex"]);

    // Collections are per tenant too.
    let (status, _) = call(
        addr,
        "POST",
        "/api/agents/agent-7/collections",
        &headers("acme"),
        Some(r#"{"collection_id":"manuals"}"#),
    )
    .await;
    assert_eq!(status, 201);
    let (_, acme_cols) = call(
        addr,
        "GET",
        "/api/agents/agent-7/collections",
        &headers("acme"),
        None,
    )
    .await;
    assert_eq!(acme_cols["collections"], serde_json::json!(["manuals"]));
    let (_, globex_cols) = call(
        addr,
        "GET",
        "/api/agents/agent-7/collections",
        &headers("globex"),
        None,
    )
    .await;
    assert_eq!(globex_cols["collections"], serde_json::json!([]));

    // No tenant: 400 TENANT_REQUIRED, and nothing was written.
    let (status, body) = call(
        addr,
        "POST",
        path,
        &[("X-Conversation-ID", "conv-1")],
        Some(r#"{"content":"who am I?"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_REQUIRED");

    // `default` is not a tenant.
    let (status, body) = call(addr, "GET", path, &headers("default"), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_INVALID");

    // A required conversation that is missing.
    let (status, body) = call(addr, "GET", path, &[("X-Tenant-ID", "acme")], None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "CONVERSATION_REQUIRED");

    // An agent id from the URL is validated like a header.
    let (status, body) = call(
        addr,
        "GET",
        "/api/agents/a%3Bb/messages",
        &headers("acme"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_INVALID");

    // The public endpoint needs no tenant.
    let (status, body) = call(addr, "GET", "/status", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "online");

    // After all that, acme still sees exactly its one message.
    let (_, acme) = call(addr, "GET", path, &headers("acme"), None).await;
    assert_eq!(contents(&acme), ["hello from acme"]);

    service.stop().await.expect("clean stop");
}
