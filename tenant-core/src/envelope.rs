//! Worker envelopes (feature `serde`): the context travels with the message.
//!
//! A producer wraps a payload with its validated context; the message carries
//! the context as raw text. The worker validates it on receipt, exactly as an
//! HTTP service validates headers, and never reads ambient state: whatever
//! context the worker process happens to have in scope is ignored.
//!
//! ```
//! use tenant_core::{envelope::Envelope, Ctx, Validated};
//!
//! // Producer.
//! let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
//! let message = serde_json::to_string(&Envelope::new(&ctx, 42_u32)).unwrap();
//! assert_eq!(message, r#"{"context":{"tenant":"acme"},"payload":42}"#);
//!
//! // Worker.
//! let envelope: Envelope<u32> = serde_json::from_str(&message).unwrap();
//! let (ctx, job): (Ctx<Validated>, u32) = envelope.open()?;
//! assert_eq!((ctx.tenant_id().as_str(), job), ("acme", 42));
//! # Ok::<(), tenant_core::ContextError>(())
//! ```

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ctx::{Ctx, IsValidated, Unvalidated};
use crate::error::{ContextError, Field};
use crate::scope::Incoming;
use crate::validator::Validator;

/// The raw context inside an [`Envelope`]: what the producer sent, not yet
/// validated. Absent fields are left out of the serialised form.
///
/// ```
/// use tenant_core::envelope::RawContext;
/// let raw: RawContext = serde_json::from_str(r#"{"tenant":"acme"}"#).unwrap();
/// assert_eq!(raw.tenant.as_deref(), Some("acme"));
/// assert_eq!(raw.to_unvalidated().raw_tenant(), Some("acme"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawContext {
    /// The raw tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The raw agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The raw conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The raw collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
}

impl RawContext {
    /// The raw values of a context (validated or not).
    ///
    /// ```
    /// use tenant_core::{envelope::RawContext, Ctx};
    /// let raw = RawContext::from_unvalidated(&Ctx::unvalidated().with_agent("a1"));
    /// assert_eq!(raw.agent.as_deref(), Some("a1"));
    /// assert_eq!(raw.tenant, None);
    /// ```
    pub fn from_unvalidated(raw: &Ctx<Unvalidated>) -> Self {
        let get = |f: Field| raw.raw(f).map(str::to_owned);
        RawContext {
            tenant: get(Field::Tenant),
            agent: get(Field::Agent),
            conversation: get(Field::Conversation),
            collection: get(Field::Collection),
        }
    }

    /// These values as an unvalidated context, ready to validate.
    ///
    /// ```
    /// use tenant_core::{envelope::RawContext, Ctx, Validated};
    /// let raw = RawContext { tenant: Some("acme".into()), ..RawContext::default() };
    /// let ctx: Ctx<Validated> = raw.to_unvalidated().validate()?;
    /// assert_eq!(ctx.tenant_id().as_str(), "acme");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn to_unvalidated(&self) -> Ctx<Unvalidated> {
        Ctx::unvalidated()
            .with_field(Field::Tenant, self.tenant.clone())
            .with_field(Field::Agent, self.agent.clone())
            .with_field(Field::Conversation, self.conversation.clone())
            .with_field(Field::Collection, self.collection.clone())
    }
}

/// A payload with the context it belongs to, for a queue or any other
/// message transport.
///
/// Built from a validated context with [`new`](Self::new); opened on receipt
/// with [`open`](Self::open) (identifier rules and required fields),
/// [`open_with`](Self::open_with) (plus the application's [`Validator`]) or
/// [`open_scoped`](Self::open_scoped) (validate, then run the handler inside
/// the context's scope). A `#[with_context]` worker handler can instead be
/// run inside [`into_incoming`](Self::into_incoming)'s scope.
///
/// ```
/// use tenant_core::{envelope::Envelope, Ctx, Validated, WithAgent};
///
/// let message = r#"{"context":{"tenant":"acme"},"payload":"reindex"}"#;
/// let envelope: Envelope<String> = serde_json::from_str(message).unwrap();
/// // The worker requires an agent; the message carries none.
/// let err = envelope.open::<Validated<WithAgent>>().unwrap_err();
/// assert_eq!(err.code(), "AGENT_REQUIRED");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    context: RawContext,
    payload: T,
}

impl<T> Envelope<T> {
    /// Wraps `payload` with the values of `ctx`.
    ///
    /// ```
    /// use tenant_core::{envelope::Envelope, Ctx, Validated};
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// let envelope = Envelope::new(&ctx, "job");
    /// assert_eq!(envelope.context().tenant.as_deref(), Some("acme"));
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn new<S: IsValidated>(ctx: &Ctx<S>, payload: T) -> Self {
        Envelope {
            context: RawContext::from_unvalidated(&ctx.to_unvalidated()),
            payload,
        }
    }

    /// The raw context the message carries. Not validated.
    ///
    /// ```
    /// use tenant_core::envelope::Envelope;
    /// let e: Envelope<()> = serde_json::from_str(r#"{"context":{},"payload":null}"#).unwrap();
    /// assert_eq!(e.context().tenant, None);
    /// ```
    pub fn context(&self) -> &RawContext {
        &self.context
    }

    /// The payload, before the context is validated (to log or dead-letter a
    /// message that fails to open).
    ///
    /// ```
    /// use tenant_core::envelope::Envelope;
    /// let e: Envelope<u8> = serde_json::from_str(r#"{"context":{},"payload":7}"#).unwrap();
    /// assert_eq!(*e.payload(), 7);
    /// ```
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Validates the context into state `S` (identifier rules and required
    /// fields) and hands back the context with the payload.
    ///
    /// ```
    /// use tenant_core::{envelope::Envelope, Validated};
    /// let e: Envelope<u8> = serde_json::from_str(r#"{"context":{"tenant":"NULL"},"payload":7}"#).unwrap();
    /// assert_eq!(e.open::<Validated>().unwrap_err().code(), "TENANT_INVALID");
    /// ```
    pub fn open<S: IsValidated>(self) -> Result<(Ctx<S>, T), ContextError> {
        let ctx = self.context.to_unvalidated().validate::<S>()?;
        Ok((ctx, self.payload))
    }

    /// [`open`](Self::open), then the application's [`Validator`], which may
    /// refuse the context. The context is
    /// [authorized](crate::Provenance::Authorized) only for the
    /// [`Principal`](crate::Principal) in scope (see
    /// [`Ctx::authorize`]); an envelope alone proves nothing about who sent
    /// it, so outside such a scope it stays unchecked.
    ///
    /// ```
    /// use tenant_core::{envelope::Envelope, ContextError, Ctx, Validated};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let closed = |_: Ctx<Validated>| async { Err(ContextError::forbidden("tenant is suspended")) };
    /// let e: Envelope<u8> = serde_json::from_str(r#"{"context":{"tenant":"acme"},"payload":7}"#).unwrap();
    /// let err = e.open_with::<Validated>(&closed).await.unwrap_err();
    /// assert_eq!(err.code(), "TENANT_FORBIDDEN");
    /// # });
    /// ```
    pub async fn open_with<S: IsValidated>(
        self,
        validator: &dyn Validator,
    ) -> Result<(Ctx<S>, T), ContextError> {
        let ctx = self.context.to_unvalidated().validate::<S>()?;
        let ctx = match crate::Incoming::current().and_then(|i| i.principal().cloned()) {
            Some(_) => ctx.authorize(validator).await?,
            None => {
                validator.check(ctx.erase()).await?;
                ctx
            }
        };
        Ok((ctx, self.payload))
    }

    /// Validates the context into state `S`, then runs `handler(ctx,
    /// payload)` inside the context's scope (so
    /// [`current`](crate::current) and [`spawn`](crate::spawn) work in it).
    /// The handler does not run when validation fails.
    ///
    /// ```
    /// use tenant_core::{current, envelope::Envelope, Ctx, Validated};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let e: Envelope<u32> = serde_json::from_str(r#"{"context":{"tenant":"acme"},"payload":2}"#).unwrap();
    /// let out = e.open_scoped(|ctx: Ctx<Validated>, n| async move {
    ///     assert_eq!(current().unwrap(), ctx);
    ///     n * 21
    /// }).await?;
    /// assert_eq!(out, 42);
    /// # Ok::<(), tenant_core::ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_scoped<S, H, Fut>(self, handler: H) -> Result<Fut::Output, ContextError>
    where
        S: IsValidated,
        H: FnOnce(Ctx<S>, T) -> Fut,
        Fut: Future,
    {
        let (ctx, payload) = self.open::<S>()?;
        let scope = ctx.clone();
        Ok(scope.scope(handler(ctx, payload)).await)
    }

    /// The raw context as an [`Incoming`] (without a validator: add one with
    /// [`Incoming::with_validator`]) and the payload, for running a
    /// `#[with_context]` handler: `incoming.scope(handler(payload)).await`.
    ///
    /// ```
    /// use tenant_core::{envelope::Envelope, Incoming};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let e: Envelope<u8> = serde_json::from_str(r#"{"context":{"tenant":"acme"},"payload":1}"#).unwrap();
    /// let (incoming, payload) = e.into_incoming();
    /// incoming.scope(async move {
    ///     let raw = Incoming::current().unwrap();
    ///     assert_eq!((raw.raw().raw_tenant(), payload), (Some("acme"), 1));
    /// }).await;
    /// # });
    /// ```
    pub fn into_incoming(self) -> (Incoming, T) {
        (Incoming::new(self.context.to_unvalidated()), self.payload)
    }
}
