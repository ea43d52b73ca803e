//! The tenant from a verified bearer JWT (feature `jwt`).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ::http::header::{HeaderMap, AUTHORIZATION};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::error::TokenError;
use crate::id::{AgentId, TenantId};

/// The longest `Authorization` header accepted, in bytes (8 KiB). A longer
/// one is `401 TOKEN_TOO_LARGE` before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// One verification key, bound to exactly one algorithm.
///
/// The algorithm comes from configuration, never from the token: a token
/// whose header names another algorithm is not checked with this key at
/// all. That is what stops `alg: none` and algorithm confusion (an HS256
/// token "signed" with an RSA public key as the HMAC secret).
///
/// ```
/// use tenant_core::edge::JwtKey;
/// let key = JwtKey::hs256(b"a development secret of 32 bytes!")?.with_kid("dev");
/// assert!(JwtKey::hs256(b"short").is_err()); // at least 32 bytes
/// # let _ = key;
/// # Ok::<(), tenant_core::edge::KeyError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A key that could not be read.
///
/// ```
/// use tenant_core::edge::JwtKey;
/// let err = JwtKey::rs256_pem(b"not a key").unwrap_err();
/// assert!(err.to_string().contains("RS256"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A PEM (or a JWK) that is not a key of the algorithm's kind.
    #[error("not a usable {alg} key: {source}")]
    Key {
        /// The algorithm the key was meant for.
        alg: &'static str,
        /// What `jsonwebtoken` said.
        source: jsonwebtoken::errors::Error,
    },
    /// A JWKS document that is not JSON of the right shape.
    #[error("not a JWKS document: {0}")]
    Jwks(#[from] serde_json::Error),
    /// A JWK without `alg`, or with an algorithm this crate does not accept
    /// (only HS256, RS256 and ES256).
    #[error("the JWK {kid:?} has no usable `alg` (HS256, RS256 or ES256)")]
    JwkAlgorithm {
        /// The key's id.
        kid: Option<String>,
    },
    /// The JWKS file could not be read.
    #[error("could not read the JWKS file: {0}")]
    Io(#[from] std::io::Error),
    /// An HS256 secret shorter than the hash's output (32 bytes), the least
    /// RFC 7518 (section 3.2) allows: short secrets can be guessed offline
    /// from any one token.
    #[error("an HS256 secret must be at least {MIN_HS256_SECRET} bytes; this one has {len}")]
    SecretTooShort {
        /// The secret's length in bytes.
        len: usize,
    },
}

/// The shortest HS256 secret [`JwtKey::hs256`] accepts, in bytes.
pub const MIN_HS256_SECRET: usize = 32;

impl JwtKey {
    /// An HS256 (HMAC-SHA-256) shared secret of at least
    /// [`MIN_HS256_SECRET`] bytes; a shorter one is
    /// [`KeyError::SecretTooShort`].
    pub fn hs256(secret: &[u8]) -> Result<JwtKey, KeyError> {
        if secret.len() < MIN_HS256_SECRET {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        let key = DecodingKey::from_secret(secret).map_err(|source| KeyError::Key {
            alg: "HS256",
            source,
        })?;
        Ok(JwtKey {
            kid: None,
            alg: Algorithm::HS256,
            key,
        })
    }

    /// An RS256 public key in PEM (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`).
    pub fn rs256_pem(pem: &[u8]) -> Result<JwtKey, KeyError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|source| KeyError::Key {
            alg: "RS256",
            source,
        })?;
        Ok(JwtKey {
            kid: None,
            alg: Algorithm::RS256,
            key,
        })
    }

    /// An ES256 (P-256) public key in PEM (`BEGIN PUBLIC KEY`).
    pub fn es256_pem(pem: &[u8]) -> Result<JwtKey, KeyError> {
        let key = DecodingKey::from_ec_pem(pem).map_err(|source| KeyError::Key {
            alg: "ES256",
            source,
        })?;
        Ok(JwtKey {
            kid: None,
            alg: Algorithm::ES256,
            key,
        })
    }

    /// The keys of a JWKS document (`{"keys":[...]}`). Each key must say
    /// its `alg` (HS256, RS256 or ES256): a key is never tried with an
    /// algorithm the token picks. An HS256 (`oct`) key holds at least
    /// [`MIN_HS256_SECRET`] bytes, as [`hs256`](Self::hs256) requires.
    ///
    /// ```
    /// use tenant_core::edge::{JwtKey, KeyError};
    /// // "c2hvcnQ" is base64url for "short", 5 bytes.
    /// let jwks = r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2hvcnQ"}]}"#;
    /// let err = JwtKey::from_jwks(jwks).unwrap_err();
    /// assert!(matches!(err, KeyError::SecretTooShort { len: 5 }));
    /// ```
    pub fn from_jwks(json: &str) -> Result<Vec<JwtKey>, KeyError> {
        let set: JwkSet = serde_json::from_str(json)?;
        set.keys
            .iter()
            .map(|jwk| {
                let kid = jwk.common.key_id.clone();
                let alg = match jwk.common.key_algorithm {
                    Some(KeyAlgorithm::HS256) => Algorithm::HS256,
                    Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                    Some(KeyAlgorithm::ES256) => Algorithm::ES256,
                    _ => return Err(KeyError::JwkAlgorithm { kid }),
                };
                if let AlgorithmParameters::OctetKey(octet) = &jwk.algorithm {
                    // Base64url, padding optional: 6 bits a character.
                    let len = octet.value.trim_end_matches('=').len() * 6 / 8;
                    if len < MIN_HS256_SECRET {
                        return Err(KeyError::SecretTooShort { len });
                    }
                }
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|source| KeyError::Key { alg: "JWK", source })?;
                Ok(JwtKey { kid, alg, key })
            })
            .collect()
    }

    /// [`from_jwks`](Self::from_jwks), read from a file.
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Vec<JwtKey>, KeyError> {
        Self::from_jwks(&std::fs::read_to_string(path)?)
    }

    /// This key answers to tokens whose header names `kid`; a token with a
    /// `kid` is only checked with the key of that id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into());
        self
    }
}

/// The names of the claims that carry the tenant, the agent and the
/// subject. [`Default`]: `tenant`, `agent`, `sub`.
///
/// ```
/// use tenant_core::edge::ClaimNames;
/// let names = ClaimNames::default().tenant("org_id");
/// assert_eq!(names.tenant_claim(), "org_id");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    tenant: String,
    agent: String,
    subject: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            tenant: "tenant".to_owned(),
            agent: "agent".to_owned(),
            subject: "sub".to_owned(),
        }
    }
}

impl ClaimNames {
    /// The tenant is in claim `name` (required in every token).
    pub fn tenant(mut self, name: impl Into<String>) -> Self {
        self.tenant = name.into();
        self
    }

    /// The agent is in claim `name` (optional).
    pub fn agent(mut self, name: impl Into<String>) -> Self {
        self.agent = name.into();
        self
    }

    /// The subject (the user or service acting) is in claim `name`
    /// (optional).
    pub fn subject(mut self, name: impl Into<String>) -> Self {
        self.subject = name.into();
        self
    }

    /// The tenant claim's name.
    pub fn tenant_claim(&self) -> &str {
        &self.tenant
    }
}

/// Verifies the bearer JWT of a request and reads its tenant.
///
/// * Keys: [`JwtKey`]s, each bound to one algorithm (HS256, RS256, ES256);
///   a token is checked only with keys of the algorithm its header names
///   (and of its `kid`, when it has one).
/// * Time: `exp` is required; `exp` and `nbf` are checked with a
///   [leeway](Self::leeway) of 30 s by default.
/// * [`audience`](Self::audience) and [`issuer`](Self::issuer): when
///   configured, the claim is required and must match.
/// * The tenant claim is required and must be a valid tenant id; the agent
///   claim, when present, a valid agent id ([`ClaimNames`]).
/// * Without a token the request is `401 TOKEN_MISSING`, unless the source
///   is [`optional`](Self::optional).
///
/// ```
/// use jsonwebtoken::{encode, EncodingKey, Header};
/// use tenant_core::edge::{BearerAuth, JwtKey, Resolver};
///
/// let secret = b"a development secret of 32 bytes!";
/// let resolver = Resolver::new().bearer(BearerAuth::new(JwtKey::hs256(secret)?).audience("api"));
///
/// let exp = jsonwebtoken::get_current_timestamp() + 600;
/// let claims = serde_json::json!({"tenant": "acme", "aud": "api", "exp": exp, "sub": "ann"});
/// let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)?)?;
/// let req = http::Request::builder()
///     .header("authorization", format!("Bearer {token}"))
///     .body(())?;
/// let resolved = resolver.resolve(&req)?;
/// assert_eq!(resolved.raw().raw_tenant(), Some("acme"));
/// assert_eq!(resolved.token().unwrap().subject(), Some("ann"));
///
/// let req = http::Request::new(());
/// assert_eq!(resolver.resolve(&req).unwrap_err().code(), "TOKEN_MISSING");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuth {
    keys: Vec<JwtKey>,
    audience: Option<Vec<String>>,
    issuer: Option<Vec<String>>,
    leeway: u64,
    claims: ClaimNames,
    optional: bool,
}

impl BearerAuth {
    /// Tokens verified with `key`.
    pub fn new(key: JwtKey) -> Self {
        Self::with_keys([key])
    }

    /// Tokens verified with one of `keys` (a JWKS, a key rotation...).
    pub fn with_keys(keys: impl IntoIterator<Item = JwtKey>) -> Self {
        BearerAuth {
            keys: keys.into_iter().collect(),
            audience: None,
            issuer: None,
            leeway: 30,
            claims: ClaimNames::default(),
            optional: false,
        }
    }

    /// Also accepts tokens verified with `key`.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Requires `aud` to be (or contain) `audience`. May be called again to
    /// accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// Requires `iss` to be `issuer`. May be called again to accept
    /// several.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer.get_or_insert_with(Vec::new).push(issuer.into());
        self
    }

    /// The clock skew allowed on `exp` and `nbf`, in seconds (default 30).
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Reads the tenant, agent and subject from other claims.
    pub fn claim_names(mut self, names: ClaimNames) -> Self {
        self.claims = names;
        self
    }

    /// A request without an `Authorization` header is let through to the
    /// next source instead of `401 TOKEN_MISSING`. A token that is sent
    /// is still verified.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(aud) => {
                v.set_audience(aud);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(iss);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// The verified token of `headers`, `None` when there is none and the
    /// source is optional.
    pub(crate) fn verify(&self, headers: &HeaderMap) -> Result<Option<VerifiedToken>, TokenError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return if self.optional {
                Ok(None)
            } else {
                Err(TokenError::Missing)
            };
        };
        if values.next().is_some() {
            return Err(TokenError::AuthorizationRepeated);
        }
        if value.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge {
                max: MAX_TOKEN_BYTES,
            });
        }
        let value = value.to_str().map_err(|_| TokenError::Malformed)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(TokenError::Missing),
        };
        self.verify_token(token).map(Some)
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let header = TokenHeader::read(token)?;
        let alg = header.alg.parse::<Algorithm>().ok();
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| Some(k.alg) == alg)
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::Invalid {
                reason: if self.keys.iter().any(|k| Some(k.alg) == alg) {
                    "no key has the token's key id (`kid`)".into()
                } else {
                    "the token's algorithm is not accepted here".into()
                },
            });
        }
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &key.key,
                &self.validation(key.alg),
            ) {
                Ok(data) => return self.read_claims(token, data.claims),
                Err(e) => {
                    let e = token_error(e.kind());
                    // Only a bad signature says "try the next key"; any
                    // other error is about a token a key did verify.
                    if !matches!(e, TokenError::Invalid { .. }) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(TokenError::Malformed))
    }

    fn read_claims(
        &self,
        token: &str,
        claims: Map<String, Value>,
    ) -> Result<VerifiedToken, TokenError> {
        let names = &self.claims;
        let claim_err = |claim: &str, problem: Cow<'static, str>| TokenError::ClaimInvalid {
            claim: claim.to_owned().into(),
            problem,
        };
        let tenant = match claims.get(&names.tenant) {
            None => return Err(claim_err(&names.tenant, "is missing".into())),
            Some(Value::String(t)) => TenantId::parse(t)
                .map_err(|e| claim_err(&names.tenant, format!("is not a tenant id: {e}").into()))?,
            Some(_) => return Err(claim_err(&names.tenant, "is not a string".into())),
        };
        let agent =
            match claims.get(&names.agent) {
                None | Some(Value::Null) => None,
                Some(Value::String(a)) => Some(AgentId::parse(a).map_err(|e| {
                    claim_err(&names.agent, format!("is not an agent id: {e}").into())
                })?),
                Some(_) => return Err(claim_err(&names.agent, "is not a string".into())),
            };
        let subject = match claims.get(&names.subject) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(claim_err(&names.subject, "is not a string".into())),
        };
        Ok(VerifiedToken {
            tenant,
            agent,
            subject,
            claims: Arc::new(claims),
            token: Arc::from(token),
        })
    }
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::AudienceInvalid,
        ErrorKind::InvalidIssuer => TokenError::IssuerInvalid,
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "aud" => TokenError::AudienceInvalid,
            "iss" => TokenError::IssuerInvalid,
            _ => TokenError::ClaimInvalid {
                claim: c.clone().into(),
                problem: "is missing".into(),
            },
        },
        ErrorKind::InvalidClaimFormat(c) => TokenError::ClaimInvalid {
            claim: c.clone().into(),
            problem: "has the wrong type".into(),
        },
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed,
        _ => TokenError::Invalid {
            reason: "it does not verify with any key this service accepts".into(),
        },
    }
}

/// A bearer token whose signature, time, audience and issuer verified,
/// with its tenant, agent and subject read. The
/// [`ContextLayer`](crate::layer::ContextLayer) puts it in the request's
/// extensions (axum: `Extension<VerifiedToken>`).
///
/// Its `Debug` never shows the token itself.
#[derive(Clone)]
pub struct VerifiedToken {
    tenant: TenantId,
    agent: Option<AgentId>,
    subject: Option<String>,
    claims: Arc<Map<String, Value>>,
    token: Arc<str>,
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("tenant", &self.tenant)
            .field("agent", &self.agent)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl VerifiedToken {
    /// The tenant claim.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The agent claim, if the token has one.
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// The subject claim, if the token has one.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// All the claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The token as sent, for forwarding to another service.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    pub(crate) fn shared_token(&self) -> Arc<str> {
        Arc::clone(&self.token)
    }
}

/// The two fields of a JWT header that pick the key, read without
/// trusting anything: the algorithm as a plain string (so `none`, `HS512`
/// or garbage are refused by name, not by a JSON error) and the key id.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

impl TokenHeader {
    fn read(token: &str) -> Result<TokenHeader, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let json = base64url_decode(header).ok_or(TokenError::Malformed)?;
        let map: Map<String, Value> =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        let alg = match map.get("alg") {
            Some(Value::String(a)) => a.clone(),
            _ => return Err(TokenError::Malformed),
        };
        let kid = match map.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(TokenError::Malformed),
        };
        Ok(TokenHeader { alg, kid })
    }
}

/// Unpadded base64url (RFC 7515 §2), `None` on any other byte.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= value(*b)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64url_decode;

    #[test]
    fn base64url_decodes_unpadded_text_and_refuses_other_bytes() {
        assert_eq!(base64url_decode("").unwrap(), b"");
        assert_eq!(base64url_decode("YQ").unwrap(), b"a");
        assert_eq!(base64url_decode("YWI").unwrap(), b"ab");
        assert_eq!(base64url_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert!(base64url_decode("YQ==").is_none());
        assert!(base64url_decode("Y").is_none());
        assert!(base64url_decode("YW+j").is_none());
    }
}
