//! Keys and tokens for the edge tests: the test key pairs in `keys/`
//! (made with `openssl genpkey`; test-only, never used anywhere else) and
//! a token minter.
#![allow(dead_code)] // each test binary uses a different part

use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tenant_core::edge::{BearerAuth, JwtKey};

pub const HS_SECRET: &[u8] = b"the edge tests' HS256 secret, 32+ bytes";
pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa-private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa-public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec-private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec-public.pem");
/// The private half of the key in `keys/jwks.json` (kid `rotated-2026`).
pub const RSA2_PRIVATE: &[u8] = include_bytes!("../keys/rsa2-private.pem");
pub const JWKS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/jwks.json");

pub const AUDIENCE: &str = "notes-api";
pub const ISSUER: &str = "https://issuer.test";

/// HS256, RS256 and ES256 keys, the JWKS file's key, audience and issuer
/// required.
pub fn bearer() -> BearerAuth {
    BearerAuth::new(JwtKey::hs256(HS_SECRET).expect("the HS256 secret"))
        .key(JwtKey::rs256_pem(RSA_PUBLIC).expect("the RSA public key"))
        .key(JwtKey::es256_pem(EC_PUBLIC).expect("the EC public key"))
        .with_jwks(JwtKey::from_jwks_file(JWKS_PATH).expect("the JWKS file"))
        .audience(AUDIENCE)
        .issuer(ISSUER)
}

trait WithJwks {
    fn with_jwks(self, keys: Vec<JwtKey>) -> Self;
}

impl WithJwks for BearerAuth {
    fn with_jwks(self, keys: Vec<JwtKey>) -> Self {
        keys.into_iter().fold(self, BearerAuth::key)
    }
}

/// Claims for `tenant`, valid for ten minutes, for [`AUDIENCE`] from [`ISSUER`].
pub fn claims(tenant: &str) -> Value {
    let now = get_current_timestamp();
    json!({
        "tenant": tenant,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 600,
    })
}

/// `claims` signed with `alg` (HS256, RS256, ES256) by the matching test key.
pub fn sign(alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET).expect("HMAC secret"),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA private key"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE).expect("EC private key"),
        other => panic!("no test key for {other:?}"),
    };
    encode(&Header::new(alg), claims, &key).expect("the token encodes")
}

/// `claims` signed by the JWKS file's key, with its `kid`.
pub fn sign_jwks(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rotated-2026".to_owned());
    let key = EncodingKey::from_rsa_pem(RSA2_PRIVATE).expect("RSA private key");
    encode(&header, claims, &key).expect("the token encodes")
}

/// An HS256 token for `tenant`.
pub fn token(tenant: &str) -> String {
    sign(Algorithm::HS256, &claims(tenant))
}

/// Unpadded base64url, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let mut b = [0u8; 3];
        b[..n].copy_from_slice(chunk);
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=n {
            out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
