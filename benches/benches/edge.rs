//! What resolving a request's tenant at the edge costs, per request:
//! `Resolver::resolve` on the same request with each source, side by side.
//!
//! * `trusted_header`: `X-Tenant-ID` as sent (the reference);
//! * `host`: the subdomain of `Host`;
//! * `hs256`, `rs256`, `es256`: a bearer JWT verified with each algorithm
//!   (RustCrypto backend, the test keys of `tests/tests/keys/`).
//!
//! Run: `cargo bench -p tenant-benches --bench edge`. Each round runs every
//! variant `ITERS` times, in a rotated order; it prints the median over
//! rounds of the time per request, and its ratio to `trusted_header`.

use std::hint::black_box;
use std::time::Instant;

use http::Request;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use tenant_core::edge::{BearerAuth, HostSource, JwtKey, Resolver};

const ROUNDS: usize = 21;
const ITERS: usize = 500;

const HS_SECRET: &[u8] = b"the edge tests' HS256 secret, 32+ bytes";
const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/tests/keys/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/tests/keys/rsa-public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/tests/keys/ec-private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/tests/keys/ec-public.pem");

fn token(alg: Algorithm, key: &EncodingKey) -> String {
    let now = get_current_timestamp();
    let claims = serde_json::json!({
        "tenant": "acme", "sub": "user-1", "aud": "api", "iat": now, "exp": now + 3600,
    });
    encode(&Header::new(alg), &claims, key).expect("the token encodes")
}

fn bearer_request(token: &str) -> Request<()> {
    Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .header("x-conversation-id", "conv-1")
        .body(())
        .unwrap()
}

fn main() {
    let bearer = Resolver::new().bearer(
        BearerAuth::new(JwtKey::hs256(HS_SECRET).unwrap())
            .key(JwtKey::rs256_pem(RSA_PUBLIC).unwrap())
            .key(JwtKey::es256_pem(EC_PUBLIC).unwrap())
            .audience("api"),
    );
    let hs = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET).unwrap(),
    );
    let rs = token(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    );
    let es = token(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    );
    let header = Resolver::new().trusted_header();
    let host = Resolver::new().host(HostSource::new("example.com"));
    let variants: Vec<(&str, &Resolver, Request<()>)> = vec![
        (
            "trusted_header",
            &header,
            Request::builder()
                .header("x-tenant-id", "acme")
                .header("x-conversation-id", "conv-1")
                .body(())
                .unwrap(),
        ),
        (
            "host",
            &host,
            Request::builder()
                .header("host", "acme.example.com")
                .header("x-conversation-id", "conv-1")
                .body(())
                .unwrap(),
        ),
        ("hs256", &bearer, bearer_request(&hs)),
        ("rs256", &bearer, bearer_request(&rs)),
        ("es256", &bearer, bearer_request(&es)),
    ];
    for (name, resolver, req) in &variants {
        let resolved = resolver
            .resolve(req)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(resolved.raw().raw_tenant(), Some("acme"), "{name}");
    }
    let mut samples = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let (_, resolver, req) = &variants[i];
            let start = Instant::now();
            for _ in 0..ITERS {
                black_box(resolver.resolve(black_box(req)).is_ok());
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / ITERS as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(|a, b| a.total_cmp(b));
            s[s.len() / 2]
        })
        .collect();
    println!("resolve one request ({ROUNDS} rounds of {ITERS}; medians)");
    println!("| source | ns per request | vs trusted_header |");
    println!("| --- | ---: | ---: |");
    for ((name, _, _), median) in variants.iter().zip(&medians) {
        println!("| {name} | {median:.0} | {:.1}x |", median / medians[0]);
    }
}
