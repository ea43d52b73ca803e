//! 100,000 random requests thrown at the resolver (host behind trusted
//! proxies, then a required bearer token): random and mutated tokens,
//! validly signed ones mixed in, random `Host`, `X-Forwarded-Host`,
//! context headers and peers. It never panics, and it never succeeds
//! unless the token was one of the validly signed ones, for that token's
//! tenant.

mod jwt;

use std::net::SocketAddr;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tenant_core::edge::{HostSource, PeerAddr, Resolver};

const CASES: u32 = 100_000;

struct Valid {
    tenant: &'static str,
    token: String,
}

fn valid_tokens() -> Vec<Valid> {
    let mut out = Vec::new();
    for tenant in ["acme", "globex"] {
        for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
            out.push(Valid {
                tenant,
                token: jwt::sign(alg, &jwt::claims(tenant)),
            });
        }
        out.push(Valid {
            tenant,
            token: jwt::sign_jwks(&jwt::claims(tenant)),
        });
    }
    out
}

/// How the `Authorization` value of a case is made.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// A valid token, as signed.
    Valid(usize),
    /// A valid token with one byte replaced.
    Mutated(usize, usize, u8),
    /// A valid token with its parts recombined from two tokens.
    Spliced(usize, usize, usize),
    /// Arbitrary bytes after `Bearer `.
    Random(Vec<u8>),
    /// Arbitrary bytes as the whole value.
    Raw(Vec<u8>),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        1 => Just(Auth::None),
        3 => (0..8usize).prop_map(Auth::Valid),
        4 => (0..8usize, any::<usize>(), any::<u8>()).prop_map(|(t, i, b)| Auth::Mutated(t, i, b)),
        2 => (0..8usize, 0..8usize, 0..3usize).prop_map(|(a, b, p)| Auth::Spliced(a, b, p)),
        2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Auth::Random),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Auth::Raw),
    ]
}

/// A header value: a plausible one or arbitrary bytes.
fn value(plausible: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        3 => proptest::sample::select(plausible).prop_map(|s| Some(s.as_bytes().to_vec())),
        2 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    auth: Auth,
    second_auth: bool,
    host: Option<Vec<u8>>,
    forwarded: Option<Vec<u8>>,
    tenant: Option<Vec<u8>>,
    agent: Option<Vec<u8>>,
    peer: Option<(u8, u16)>,
}

fn case() -> impl Strategy<Value = Case> {
    const HOSTS: &[&str] = &[
        "acme.example.com",
        "globex.example.com",
        "example.com",
        "ACME.example.com",
        "acme.example.com:8443",
        "acme.example.com:80",
        "xn--acm-ppa.example.com",
        "default.example.com",
        "a.b.example.com",
        "[::1]:8443",
    ];
    const TENANTS: &[&str] = &["acme", "globex", "default", "ACME", "acme,globex", ""];
    (
        auth(),
        proptest::bool::weighted(0.05),
        value(HOSTS),
        value(HOSTS),
        value(TENANTS),
        value(&["bot-1", "null", "Bot"]),
        proptest::option::of((any::<u8>(), any::<u16>())),
    )
        .prop_map(
            |(auth, second_auth, host, forwarded, tenant, agent, peer)| Case {
                auth,
                second_auth,
                host,
                forwarded,
                tenant,
                agent,
                peer,
            },
        )
}

fn insert(headers: &mut HeaderMap, name: &'static str, bytes: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(bytes) {
        headers.append(HeaderName::from_static(name), v);
    }
}

#[test]
fn random_headers_and_tokens_never_panic_and_never_pass_unsigned() {
    let valid = valid_tokens();
    let resolver = Resolver::new()
        .host(
            HostSource::new("example.com")
                .allow_port(8443)
                .trust_proxy("10.0.0.0/8".parse().unwrap()),
        )
        .bearer(jwt::bearer());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        // ChaCha in a debug build was 40% of the run.
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(&case(), |case| {
            let mut headers = HeaderMap::new();
            let token_bytes: Option<Vec<u8>> = match &case.auth {
                Auth::None => None,
                Auth::Valid(i) => Some(format!("Bearer {}", valid[*i].token).into_bytes()),
                Auth::Mutated(t, i, b) => {
                    let mut bytes = valid[*t].token.clone().into_bytes();
                    let at = i % bytes.len();
                    bytes[at] = *b;
                    let mut v = b"Bearer ".to_vec();
                    v.extend(bytes);
                    Some(v)
                }
                Auth::Spliced(a, b, part) => {
                    let mut pa: Vec<&str> = valid[*a].token.split('.').collect();
                    let pb: Vec<&str> = valid[*b].token.split('.').collect();
                    pa[*part] = pb[*part];
                    Some(format!("Bearer {}", pa.join(".")).into_bytes())
                }
                Auth::Random(bytes) => {
                    let mut v = b"Bearer ".to_vec();
                    v.extend(bytes);
                    Some(v)
                }
                Auth::Raw(bytes) => Some(bytes.clone()),
            };
            if let Some(bytes) = &token_bytes {
                insert(&mut headers, "authorization", bytes);
                if case.second_auth {
                    insert(&mut headers, "authorization", bytes);
                }
            }
            for (name, v) in [
                ("host", &case.host),
                ("x-forwarded-host", &case.forwarded),
                ("x-tenant-id", &case.tenant),
                ("x-agent-id", &case.agent),
            ] {
                if let Some(v) = v {
                    insert(&mut headers, name, v);
                }
            }
            let mut extensions = Extensions::new();
            if let Some((last, port)) = case.peer {
                let ip = if last % 2 == 0 {
                    "10.0.0.1"
                } else {
                    "192.0.2.1"
                };
                let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
                extensions.insert(PeerAddr(addr));
            }

            let result = resolver.resolve_parts(&headers, &extensions);
            match result {
                Err(e) => {
                    // A refusal is always a 4xx with a code.
                    prop_assert!((400..500).contains(&e.http_status()), "{e:?}");
                    prop_assert!(!e.code().is_empty());
                }
                Ok(resolved) => {
                    accepted.set(accepted.get() + 1);
                    // Only a validly signed token, exactly as signed, passes.
                    let sent = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::trim);
                    let signed = valid.iter().find(|v| Some(v.token.as_str()) == sent);
                    prop_assert!(signed.is_some(), "accepted an unsigned token: {case:?}");
                    let signed = signed.unwrap();
                    let token = resolved.token().expect("a verified token");
                    prop_assert_eq!(token.tenant().as_str(), signed.tenant);
                    prop_assert_eq!(resolved.raw().raw_tenant(), Some(signed.tenant));
                }
            }
            Ok(())
        })
        .unwrap();
    // The mix is not all refusals: valid tokens with harmless headers pass.
    let accepted = accepted.get();
    assert!(accepted > 1_000, "only {accepted} accepted");
}
