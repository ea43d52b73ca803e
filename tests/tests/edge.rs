//! Tenant resolution at the HTTP edge, through a real axum router: each
//! source (trusted header, host, `X-Forwarded-Host` behind a trusted proxy,
//! bearer JWT with HS256, RS256, ES256 and a JWKS file), the chain's
//! agreement rule, and every kind of bad input (empty, `default`, too long, non-ASCII, control
//! or quote characters), each a
//! 4xx with a stable code that never reaches the handler.

mod jwt;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{Request, StatusCode};
use jsonwebtoken::Algorithm;
use jwt::{b64, claims, sign, sign_jwks, token};
use serde_json::{json, Value};
use tenant_core::edge::{HostSource, Resolver, VerifiedToken};
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx, Validated};
use tower::ServiceExt;

/// The handler every accepted request reaches: who it runs for.
#[with_context(tenant)]
async fn whoami(ctx: Ctx<Validated>) -> Result<Json<Value>, ContextError> {
    Ok(Json(json!({
        "tenant": ctx.tenant_id().as_str(),
        "agent": ctx.agent_id_opt().map(|a| a.as_str()),
    })))
}

async fn subject(Extension(token): Extension<VerifiedToken>) -> Json<Value> {
    Json(json!({ "subject": token.subject() }))
}

fn router(resolver: Resolver) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/subject", get(subject))
        .layer(ContextLayer::new().resolver(resolver))
}

fn bearer_router() -> Router {
    router(Resolver::new().bearer(jwt::bearer()))
}

fn host_router() -> Router {
    router(
        Resolver::new().host(
            HostSource::new("example.com")
                .allow_port(8443)
                .trust_proxy("10.0.0.0/8".parse().unwrap()),
        ),
    )
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    json: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        json,
    }
}

fn get_with(headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::builder().uri("/whoami");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a refusal: its status and code, the JSON envelope, and that
/// the handler (which answers with a `tenant`) never ran.
#[track_caller]
fn assert_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.json);
    assert_eq!(answer.code(), code, "{}", answer.json);
    assert!(
        answer.json["error"]["message"].is_string(),
        "{}",
        answer.json
    );
    assert!(answer.json.get("tenant").is_none(), "{}", answer.json);
}

/// Asserts a token refusal: a `401` (or `400`) with a `Bearer` challenge
/// carrying the RFC 6750 error attribute.
#[track_caller]
fn assert_token_refused(answer: &Answer, status: u16, code: &str, error: &str) {
    assert_refused(answer, status, code);
    let challenge = answer
        .challenge
        .as_deref()
        .expect("a WWW-Authenticate header");
    assert!(
        challenge.starts_with(&format!(r#"Bearer error="{error}""#)),
        "{challenge}"
    );
}

#[tokio::test]
async fn the_trusted_header_source_is_todays_behaviour() {
    let router = router(Resolver::new().trusted_header());
    let ok = send(
        &router,
        get_with(&[("x-tenant-id", "acme"), ("x-agent-id", "bot-1")]),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json, json!({"tenant": "acme", "agent": "bot-1"}));

    let none = send(&router, get_with(&[])).await;
    assert_refused(&none, 400, "TENANT_REQUIRED");
    let twice = send(
        &router,
        get_with(&[("x-tenant-id", "acme"), ("x-tenant-id", "globex")]),
    )
    .await;
    assert_refused(&twice, 400, "HEADER_REPEATED");
}

#[tokio::test]
async fn the_host_source_takes_the_subdomain() {
    let router = host_router();
    let ok = send(&router, get_with(&[("host", "acme.example.com")])).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    assert_eq!(ok.json["tenant"], "acme");
    let port = send(&router, get_with(&[("host", "globex.example.com:8443")])).await;
    assert_eq!(port.json["tenant"], "globex");

    // The base domain and foreign hosts name no tenant.
    for host in [
        "example.com",
        "acme.example.org",
        "acme.example.com.evil.test",
        "127.0.0.1",
    ] {
        let answer = send(&router, get_with(&[("host", host)])).await;
        assert_refused(&answer, 400, "TENANT_REQUIRED");
    }
    // A client cannot pick another tenant with the header.
    let header = send(
        &router,
        get_with(&[("host", "acme.example.com"), ("x-tenant-id", "globex")]),
    )
    .await;
    assert_refused(&header, 403, "TENANT_MISMATCH");
    let same = send(
        &router,
        get_with(&[("host", "acme.example.com"), ("x-tenant-id", "acme")]),
    )
    .await;
    assert_eq!(same.json["tenant"], "acme");
    let header_only = send(
        &router,
        get_with(&[("host", "example.com"), ("x-tenant-id", "globex")]),
    )
    .await;
    assert_refused(&header_only, 403, "TENANT_HEADER_UNTRUSTED");
}

fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

#[tokio::test]
async fn x_forwarded_host_counts_only_from_a_trusted_proxy() {
    let router = host_router();
    let forwarded = || {
        get_with(&[
            ("host", "internal-lb.example.net"),
            ("x-forwarded-host", "acme.example.com"),
        ])
    };
    let trusted = send(&router, from_peer(forwarded(), "10.1.2.3:40000")).await;
    assert_eq!(trusted.status, 200, "{}", trusted.json);
    assert_eq!(trusted.json["tenant"], "acme");

    let untrusted = send(&router, from_peer(forwarded(), "192.0.2.7:40000")).await;
    assert_refused(&untrusted, 400, "FORWARDED_HOST_UNTRUSTED");
    // No peer address at all is not a trusted proxy either.
    let unknown = send(&router, forwarded()).await;
    assert_refused(&unknown, 400, "FORWARDED_HOST_UNTRUSTED");
    // A list of hosts is ambiguous.
    let list = send(
        &router,
        from_peer(
            get_with(&[("x-forwarded-host", "acme.example.com, globex.example.com")]),
            "10.0.0.1:1",
        ),
    )
    .await;
    assert_refused(&list, 400, "HEADER_REPEATED");
}

/// Over a real socket, with axum's `ConnectInfo` from the accept loop: the
/// peer is 127.0.0.1, trusted by one router and not by the other.
#[tokio::test]
async fn x_forwarded_host_over_tcp_uses_the_connection_peer() {
    for (trusted_net, expect) in [("127.0.0.0/8", 200), ("10.0.0.0/8", 400)] {
        let app = router(
            Resolver::new()
                .host(HostSource::new("example.com").trust_proxy(trusted_net.parse().unwrap())),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        let (status, body) = raw_get(
            addr,
            "Host: lb.example.net\r\nX-Forwarded-Host: acme.example.com\r\n",
        )
        .await;
        assert_eq!(status, expect, "{body}");
        if expect == 200 {
            assert!(body.contains(r#""tenant":"acme""#), "{body}");
        } else {
            assert!(body.contains("FORWARDED_HOST_UNTRUSTED"), "{body}");
        }
        server.abort();
    }
}

async fn raw_get(addr: SocketAddr, headers: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /whoami HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn bearer_tokens_of_each_algorithm_and_the_jwks_key_resolve_their_tenant() {
    let router = bearer_router();
    let tokens = [
        ("acme", sign(Algorithm::HS256, &claims("acme"))),
        ("globex", sign(Algorithm::RS256, &claims("globex"))),
        ("initech", sign(Algorithm::ES256, &claims("initech"))),
        ("umbrella", sign_jwks(&claims("umbrella"))),
    ];
    for (tenant, token) in &tokens {
        let answer = send(&router, get_with(&[("authorization", &bearer(token))])).await;
        assert_eq!(answer.status, 200, "{tenant}: {}", answer.json);
        assert_eq!(answer.json["tenant"], *tenant);
    }
    // The verified token reaches handlers as an extension.
    let req = Request::builder()
        .uri("/subject")
        .header("authorization", bearer(&tokens[0].1))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, req).await.json["subject"], "user-1");
    // The scheme is case-insensitive (RFC 7235).
    let lower = send(
        &router,
        get_with(&[("authorization", &format!("bearer {}", tokens[0].1))]),
    )
    .await;
    assert_eq!(lower.json["tenant"], "acme");
}

#[tokio::test]
async fn the_token_decides_and_a_header_that_disagrees_is_tenant_mismatch() {
    let router = bearer_router();
    let acme = token("acme");
    let mismatch = send(
        &router,
        get_with(&[("authorization", &bearer(&acme)), ("x-tenant-id", "globex")]),
    )
    .await;
    assert_refused(&mismatch, 403, "TENANT_MISMATCH");
    let agree = send(
        &router,
        get_with(&[("authorization", &bearer(&acme)), ("x-tenant-id", "acme")]),
    )
    .await;
    assert_eq!(agree.json["tenant"], "acme");

    // No token: 401 with a bare challenge (RFC 6750 §3.1), even with a header.
    for headers in [vec![], vec![("x-tenant-id", "acme")]] {
        let missing = send(&router, get_with(&headers)).await;
        assert_refused(&missing, 401, "TOKEN_MISSING");
        assert_eq!(missing.challenge.as_deref(), Some("Bearer"));
    }
    let basic = send(
        &router,
        get_with(&[("authorization", "Basic YWNtZTpodW50ZXIy")]),
    )
    .await;
    assert_refused(&basic, 401, "TOKEN_MISSING");
}

#[tokio::test]
async fn sources_in_a_chain_must_agree() {
    let router = router(
        Resolver::new()
            .host(HostSource::new("example.com"))
            .bearer(jwt::bearer()),
    );
    let acme = token("acme");
    let agree = send(
        &router,
        get_with(&[
            ("host", "acme.example.com"),
            ("authorization", &bearer(&acme)),
        ]),
    )
    .await;
    assert_eq!(agree.json["tenant"], "acme");
    let disagree = send(
        &router,
        get_with(&[
            ("host", "globex.example.com"),
            ("authorization", &bearer(&acme)),
        ]),
    )
    .await;
    assert_refused(&disagree, 403, "TENANT_MISMATCH");
    assert!(
        disagree.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the host"),
        "{}",
        disagree.json
    );
}

#[tokio::test]
async fn the_tokens_agent_claim_is_the_agent_and_must_agree_with_the_header() {
    let router = bearer_router();
    let mut c = claims("acme");
    c["agent"] = json!("bot-1");
    let t = sign(Algorithm::HS256, &c);
    let ok = send(&router, get_with(&[("authorization", &bearer(&t))])).await;
    assert_eq!(ok.json, json!({"tenant": "acme", "agent": "bot-1"}));
    let other = send(
        &router,
        get_with(&[("authorization", &bearer(&t)), ("x-agent-id", "bot-2")]),
    )
    .await;
    assert_refused(&other, 403, "AGENT_MISMATCH");
}

#[tokio::test]
async fn leeway_is_small_and_configurable() {
    let mut c = claims("acme");
    c["exp"] = json!(jsonwebtoken::get_current_timestamp() - 10);
    let t = sign(Algorithm::HS256, &c);
    let lenient = send(
        &bearer_router(),
        get_with(&[("authorization", &bearer(&t))]),
    )
    .await;
    assert_eq!(
        lenient.status, 200,
        "within the default 30 s: {}",
        lenient.json
    );
    let strict = router(Resolver::new().bearer(jwt::bearer().leeway(0)));
    let refused = send(&strict, get_with(&[("authorization", &bearer(&t))])).await;
    assert_token_refused(&refused, 401, "TOKEN_EXPIRED", "invalid_token");
}

// ---- Bad input: one test each ----

async fn with_token(token: &str) -> Answer {
    send(
        &bearer_router(),
        get_with(&[("authorization", &bearer(token))]),
    )
    .await
}

#[tokio::test]
async fn alg_none_is_token_invalid() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims("acme").to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        let answer = with_token(&token).await;
        assert_token_refused(&answer, 401, "TOKEN_INVALID", "invalid_token");
    }
    // `None`, `NONE`: no spelling of it is an algorithm here.
    let header = b64(br#"{"alg":"None"}"#);
    let answer = with_token(&format!("{header}.{payload}.")).await;
    assert_token_refused(&answer, 401, "TOKEN_INVALID", "invalid_token");
}

#[tokio::test]
async fn hs256_signed_with_the_rs256_public_key_is_token_invalid() {
    // The classic algorithm confusion: the attacker knows the public key
    // and uses it as an HMAC secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("globex"),
        &jsonwebtoken::EncodingKey::from_secret(jwt::RSA_PUBLIC).unwrap(),
    )
    .unwrap();
    let answer = with_token(&forged).await;
    assert_token_refused(&answer, 401, "TOKEN_INVALID", "invalid_token");
    // Also when the service has no HS256 key at all.
    let rsa_only = router(
        Resolver::new().bearer(
            tenant_core::edge::BearerAuth::new(
                tenant_core::edge::JwtKey::rs256_pem(jwt::RSA_PUBLIC).unwrap(),
            )
            .audience(jwt::AUDIENCE),
        ),
    );
    let answer = send(&rsa_only, get_with(&[("authorization", &bearer(&forged))])).await;
    assert_token_refused(&answer, 401, "TOKEN_INVALID", "invalid_token");
}

#[tokio::test]
async fn an_expired_token_is_token_expired() {
    let mut c = claims("acme");
    c["exp"] = json!(jsonwebtoken::get_current_timestamp() - 3600);
    let answer = with_token(&sign(Algorithm::RS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_EXPIRED", "invalid_token");
}

#[tokio::test]
async fn a_token_without_exp_is_token_claim_invalid() {
    let mut c = claims("acme");
    c.as_object_mut().unwrap().remove("exp");
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_CLAIM_INVALID", "invalid_token");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_token_not_yet_valid() {
    let mut c = claims("acme");
    c["nbf"] = json!(jsonwebtoken::get_current_timestamp() + 3600);
    let answer = with_token(&sign(Algorithm::ES256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_NOT_YET_VALID", "invalid_token");
}

#[tokio::test]
async fn a_wrong_or_missing_audience_is_token_audience_invalid() {
    let mut c = claims("acme");
    c["aud"] = json!("billing-api");
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_AUDIENCE_INVALID", "invalid_token");
    c.as_object_mut().unwrap().remove("aud");
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_AUDIENCE_INVALID", "invalid_token");
}

#[tokio::test]
async fn a_wrong_issuer_is_token_issuer_invalid() {
    let mut c = claims("acme");
    c["iss"] = json!("https://evil.test");
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_ISSUER_INVALID", "invalid_token");
}

#[tokio::test]
async fn a_tampered_payload_is_token_invalid() {
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let genuine = sign(alg, &claims("acme"));
        let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
        parts[1] = b64(claims("globex").to_string().as_bytes());
        let answer = with_token(&parts.join(".")).await;
        assert_token_refused(&answer, 401, "TOKEN_INVALID", "invalid_token");
    }
}

#[tokio::test]
async fn a_reserved_or_malformed_tenant_claim_is_token_claim_invalid() {
    for tenant in [
        json!("default"),
        json!("ACME"),
        json!("a;b"),
        json!(""),
        json!(7),
        json!(null),
    ] {
        let mut c = claims("acme");
        c["tenant"] = tenant.clone();
        let answer = with_token(&sign(Algorithm::HS256, &c)).await;
        assert_token_refused(&answer, 401, "TOKEN_CLAIM_INVALID", "invalid_token");
    }
    let mut c = claims("acme");
    c.as_object_mut().unwrap().remove("tenant");
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_CLAIM_INVALID", "invalid_token");
}

#[tokio::test]
async fn malformed_tokens_are_token_malformed() {
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.???.###", "e30.e30"] {
        let answer = with_token(token).await;
        assert_token_refused(&answer, 401, "TOKEN_MALFORMED", "invalid_token");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_authorization_repeated() {
    let acme = bearer(&token("acme"));
    let globex = bearer(&token("globex"));
    let answer = send(
        &bearer_router(),
        get_with(&[("authorization", &acme), ("authorization", &globex)]),
    )
    .await;
    assert_token_refused(&answer, 400, "AUTHORIZATION_REPEATED", "invalid_request");
}

#[tokio::test]
async fn a_token_over_8_kib_is_token_too_large() {
    let mut c = claims("acme");
    c["padding"] = json!("x".repeat(9 * 1024));
    let answer = with_token(&sign(Algorithm::HS256, &c)).await;
    assert_token_refused(&answer, 401, "TOKEN_TOO_LARGE", "invalid_token");
}

#[tokio::test]
async fn a_host_with_a_port_not_allowed_is_host_invalid() {
    for host in [
        "acme.example.com:8080",
        "acme.example.com:",
        "acme.example.com:08443x",
    ] {
        let answer = send(&host_router(), get_with(&[("host", host)])).await;
        assert_refused(&answer, 400, "HOST_INVALID");
    }
}

#[tokio::test]
async fn a_host_with_upper_case_is_host_invalid() {
    for host in [
        "ACME.example.com",
        "acme.Example.com",
        "Acme.example.com:8443",
    ] {
        let answer = send(&host_router(), get_with(&[("host", host)])).await;
        assert_refused(&answer, 400, "HOST_INVALID");
    }
}

#[tokio::test]
async fn an_idn_host_is_host_invalid() {
    let router = host_router();
    let punycode = send(&router, get_with(&[("host", "xn--acm-ppa.example.com")])).await;
    assert_refused(&punycode, 400, "HOST_INVALID");
    // Non-ASCII bytes (UTF-8 `acmé`), as a raw header value.
    let mut req = get_with(&[]);
    req.headers_mut().insert(
        "host",
        http::HeaderValue::from_bytes("acmé.example.com".as_bytes()).unwrap(),
    );
    let utf8 = send(&router, req).await;
    assert_refused(&utf8, 400, "HOST_INVALID");
}

#[tokio::test]
async fn other_bad_hosts_are_refused() {
    let router = host_router();
    for (host, code) in [
        ("a.b.example.com", "HOST_INVALID"),
        ("acme.example.com.", "HOST_INVALID"),
        ("default.example.com", "TENANT_INVALID"),
        ("a_b.example.com", "HOST_INVALID"),
        ("none.example.com", "TENANT_INVALID"),
    ] {
        let answer = send(&router, get_with(&[("host", host)])).await;
        assert_refused(&answer, 400, code);
    }
}

#[tokio::test]
async fn x_forwarded_host_from_an_untrusted_peer_is_refused() {
    let req = from_peer(
        get_with(&[
            ("host", "acme.example.com"),
            ("x-forwarded-host", "globex.example.com"),
        ]),
        "203.0.113.9:5555",
    );
    let answer = send(&host_router(), req).await;
    assert_refused(&answer, 400, "FORWARDED_HOST_UNTRUSTED");
}
