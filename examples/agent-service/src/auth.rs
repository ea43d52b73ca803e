//! Where a request's tenant comes from: a bearer token (the default) or,
//! behind a gateway, the `X-Tenant-ID` header as sent.

use std::fmt;

use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use serde_json::json;
use tenant_core::edge::{BearerAuth, JwtKey, KeyError, Resolver};

/// The `iss` of the tokens this service accepts.
pub const ISSUER: &str = "agent-service-dev";
/// The `aud` of the tokens this service accepts.
pub const AUDIENCE: &str = "agent-service";
/// How long the tokens of [`Auth::token`] are valid, in seconds (a day).
pub const TOKEN_LIFETIME: u64 = 24 * 3600;

/// Where a request's tenant comes from.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <JWT>`, HS256 with this key, `iss`
    /// [`ISSUER`], `aud` [`AUDIENCE`]; the tenant in the `tenant` claim,
    /// optionally the agent in `agent`. An `X-Tenant-ID` header must agree
    /// with the token (`403 TENANT_MISMATCH`).
    Bearer {
        /// The HS256 key.
        secret: Vec<u8>,
    },
    /// `X-Tenant-ID` as sent: only for a service that no client reaches
    /// except through a gateway that authenticates and sets it
    /// (`TRUST_TENANT_HEADER=1`).
    TrustedHeader,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer { secret: … }"),
            Auth::TrustedHeader => f.write_str("TrustedHeader"),
        }
    }
}

impl Auth {
    /// Bearer tokens, with a development key made up now (it dies with the
    /// process; print it with [`signing_key_hex`](Self::signing_key_hex)).
    pub fn development() -> Auth {
        Auth::Bearer {
            secret: made_up_secret(),
        }
    }

    /// The resolver of the service's context layer; a bearer secret
    /// shorter than 32 bytes is refused.
    pub fn resolver(&self) -> Result<Resolver, KeyError> {
        Ok(match self {
            Auth::Bearer { secret } => Resolver::new().bearer(
                BearerAuth::new(JwtKey::hs256(secret)?)
                    .issuer(ISSUER)
                    .audience(AUDIENCE),
            ),
            Auth::TrustedHeader => Resolver::new().trusted_header(),
        })
    }

    /// The signing key as hex, for a developer to mint their own tokens;
    /// `None` in trusted-header mode.
    pub fn signing_key_hex(&self) -> Option<String> {
        match self {
            Auth::Bearer { secret } => Some(secret.iter().map(|b| format!("{b:02x}")).collect()),
            Auth::TrustedHeader => None,
        }
    }

    /// A token for `tenant` (and `agent`), valid for [`TOKEN_LIFETIME`];
    /// `None` in trusted-header mode.
    pub fn token(&self, tenant: &str, agent: Option<&str>) -> Option<String> {
        let Auth::Bearer { secret } = self else {
            return None;
        };
        let now = get_current_timestamp();
        let mut claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": format!("dev-user@{tenant}"),
            "tenant": tenant,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        });
        if let Some(agent) = agent {
            claims["agent"] = json!(agent);
        }
        let key = EncodingKey::from_secret(secret).ok()?;
        encode(&Header::default(), &claims, &key).ok()
    }
}

/// 32 bytes no one else knows: hashed with the standard library's random
/// keys. Enough for a development key or a throwaway database's guard,
/// which only have to be unknown to clients and to the service's own SQL;
/// a production key comes from `JWT_SECRET`.
pub(crate) fn made_up_secret() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut secret = Vec::with_capacity(32);
    while secret.len() < 32 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(secret.len());
        secret.extend_from_slice(&h.finish().to_le_bytes());
    }
    secret
}
