//! The context as HTTP headers (feature `http`).
//!
//! An incoming request carries the raw context in four headers,
//! `X-Tenant-ID`, `X-Agent-ID`, `X-Conversation-ID` and `X-Collection-ID`
//! (names configurable with [`HeaderNames`]). [`extract`] reads them into a
//! [`Ctx<Unvalidated>`]; [`inject`] writes a validated context into the
//! headers of an outgoing call to another service, and [`inject_current`]
//! does the same with the context in scope.
//!
//! ```
//! use http::HeaderMap;
//! use tenant_core::{http::{extract, inject}, Ctx, Validated};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-tenant-id", "acme".parse().unwrap());
//! let ctx: Ctx<Validated> = extract(&headers)?.validate()?;
//!
//! let mut outgoing = HeaderMap::new();
//! inject(&ctx, &mut outgoing);
//! assert_eq!(outgoing["x-tenant-id"], "acme");
//! # Ok::<(), tenant_core::ContextError>(())
//! ```
//!
//! A header sent twice, or one value holding several comma-joined values, is
//! refused with [`ContextError::HeaderRepeated`]: a proxy that keeps the
//! first value and a service that keeps the last would otherwise act for two
//! different tenants.

use std::borrow::Cow;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::ctx::{Ctx, IsValidated, Unvalidated};
use crate::error::{ContextError, Field};
use crate::scope::current;

/// The header that carries the tenant by default.
pub const TENANT_HEADER: &str = "x-tenant-id";
/// The header that carries the agent by default.
pub const AGENT_HEADER: &str = "x-agent-id";
/// The header that carries the conversation by default.
pub const CONVERSATION_HEADER: &str = "x-conversation-id";
/// The header that carries the collection by default.
pub const COLLECTION_HEADER: &str = "x-collection-id";

/// The names of the four context headers.
///
/// [`Default`] gives `X-Tenant-ID`, `X-Agent-ID`, `X-Conversation-ID` and
/// `X-Collection-ID`. Change one with [`with`](Self::with):
///
/// ```
/// use http::{HeaderMap, HeaderName};
/// use tenant_core::{http::HeaderNames, Field};
///
/// let names = HeaderNames::default()
///     .with(Field::Tenant, HeaderName::from_static("x-org"));
/// let mut headers = HeaderMap::new();
/// headers.insert("x-org", "acme".parse().unwrap());
/// assert_eq!(names.extract(&headers)?.raw_tenant(), Some("acme"));
/// # Ok::<(), tenant_core::ContextError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    tenant: HeaderName,
    agent: HeaderName,
    conversation: HeaderName,
    collection: HeaderName,
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            tenant: HeaderName::from_static(TENANT_HEADER),
            agent: HeaderName::from_static(AGENT_HEADER),
            conversation: HeaderName::from_static(CONVERSATION_HEADER),
            collection: HeaderName::from_static(COLLECTION_HEADER),
        }
    }
}

impl HeaderNames {
    /// The same names, with `field` carried by the header `name`.
    ///
    /// ```
    /// use http::HeaderName;
    /// use tenant_core::{http::HeaderNames, Field};
    /// let names = HeaderNames::default().with(Field::Agent, HeaderName::from_static("x-bot"));
    /// assert_eq!(names.get(Field::Agent), "x-bot");
    /// ```
    pub fn with(mut self, field: Field, name: HeaderName) -> Self {
        *self.slot_mut(field) = name;
        self
    }

    /// The header that carries `field`.
    ///
    /// ```
    /// use tenant_core::{http::HeaderNames, Field};
    /// assert_eq!(HeaderNames::default().get(Field::Tenant), "x-tenant-id");
    /// ```
    pub fn get(&self, field: Field) -> &HeaderName {
        match field {
            Field::Tenant => &self.tenant,
            Field::Agent => &self.agent,
            Field::Conversation => &self.conversation,
            Field::Collection => &self.collection,
        }
    }

    fn slot_mut(&mut self, field: Field) -> &mut HeaderName {
        match field {
            Field::Tenant => &mut self.tenant,
            Field::Agent => &mut self.agent,
            Field::Conversation => &mut self.conversation,
            Field::Collection => &mut self.collection,
        }
    }

    /// Reads the raw context from `headers`, using these names. See
    /// [`extract`].
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tenant_core::http::HeaderNames;
    /// let raw = HeaderNames::default().extract(&HeaderMap::new())?;
    /// assert_eq!(raw.raw_tenant(), None);
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn extract(&self, headers: &HeaderMap) -> Result<Ctx<Unvalidated>, ContextError> {
        let mut raw = Ctx::unvalidated();
        for field in Field::ALL {
            let value = single_value(headers, self.get(field))?;
            if value.is_some() {
                raw = raw.with_field(field, value);
            }
        }
        Ok(raw)
    }

    /// Writes `ctx` into `headers`, using these names. See [`inject`].
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tenant_core::{http::HeaderNames, Ctx, Validated};
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// let mut headers = HeaderMap::new();
    /// HeaderNames::default().inject(&ctx, &mut headers);
    /// assert_eq!(headers["x-tenant-id"], "acme");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn inject<S: IsValidated>(&self, ctx: &Ctx<S>, headers: &mut HeaderMap) {
        let values = [
            Some(ctx.tenant_id().as_str()),
            ctx.agent_id_opt().map(|a| a.as_str()),
            ctx.conversation_id_opt().map(|c| c.as_str()),
            ctx.collection_id_opt().map(|l| l.as_str()),
        ];
        for (field, value) in Field::ALL.into_iter().zip(values) {
            let name = self.get(field).clone();
            match value {
                Some(v) => {
                    headers.insert(name, id_header_value(v));
                }
                // A header copied from the incoming request must not claim a
                // field this context does not carry.
                None => {
                    headers.remove(name);
                }
            }
        }
    }
}

/// Identifiers are parsed to ASCII letters, digits and `-_.:`, all of which
/// are valid header bytes.
fn id_header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).expect("a parsed identifier is always a valid header value")
}

fn header_label(name: &HeaderName) -> Cow<'static, str> {
    Cow::Owned(name.as_str().to_owned())
}

fn single_value(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ContextError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ContextError::HeaderRepeated {
            header: header_label(name),
        });
    }
    let text = value.to_str().map_err(|_| ContextError::HeaderNotText {
        header: header_label(name),
    })?;
    if text.contains(',') {
        return Err(ContextError::HeaderRepeated {
            header: header_label(name),
        });
    }
    Ok(Some(text.to_owned()))
}

/// Reads the raw context from the default headers (`X-Tenant-ID`, ...).
///
/// An absent header leaves its field empty (validation then says
/// `TENANT_REQUIRED`, `AGENT_REQUIRED`, ...). A header sent more than once or
/// holding a comma is [`ContextError::HeaderRepeated`]; one that is not
/// visible ASCII text is [`ContextError::HeaderNotText`]. Values are kept
/// exactly as sent: the identifier rules are applied by validation.
///
/// ```
/// use http::HeaderMap;
/// use tenant_core::http::extract;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-tenant-id", "acme,globex".parse().unwrap());
/// assert_eq!(extract(&headers).unwrap_err().code(), "HEADER_REPEATED");
/// ```
pub fn extract(headers: &HeaderMap) -> Result<Ctx<Unvalidated>, ContextError> {
    HeaderNames::default().extract(headers)
}

/// Writes a validated context into the default headers, for an outgoing call
/// to another service.
///
/// Each field the context carries replaces any value already there; a
/// context header for a field it does not carry is removed, so headers
/// copied from an incoming request cannot smuggle a stale agent along.
///
/// ```
/// use http::HeaderMap;
/// use tenant_core::{http::inject, Ctx, Validated};
///
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-agent-id", "stale".parse().unwrap());
/// inject(&ctx, &mut headers);
/// assert_eq!(headers["x-tenant-id"], "acme");
/// assert!(headers.get("x-agent-id").is_none());
/// # Ok::<(), tenant_core::ContextError>(())
/// ```
pub fn inject<S: IsValidated>(ctx: &Ctx<S>, headers: &mut HeaderMap) {
    HeaderNames::default().inject(ctx, headers)
}

/// Writes the current validated context ([`current`](crate::current())) into the default
/// headers. Fails with [`ContextError::NoContext`] outside any scope (and
/// leaves `headers` untouched), so an outgoing call never goes out without
/// its tenant by accident.
///
/// ```
/// use http::HeaderMap;
/// use tenant_core::{http::inject_current, Ctx, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut headers = HeaderMap::new();
/// assert!(inject_current(&mut headers).is_err());
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
/// ctx.scope(async { inject_current(&mut headers).unwrap() }).await;
/// assert_eq!(headers["x-tenant-id"], "acme");
/// # });
/// ```
pub fn inject_current(headers: &mut HeaderMap) -> Result<(), ContextError> {
    inject(&current()?, headers);
    Ok(())
}
