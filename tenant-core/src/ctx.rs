//! [`Ctx<S>`]: the context as a type-state (re-exported at the crate root,
//! where its states are documented on [`Ctx`]).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{ContextError, Field};
use crate::id::{AgentId, CollectionId, ConversationId, TenantId};
use crate::validator::Validator;

mod sealed {
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not one of tenant_core's context states",
        label = "only tenant_core defines context states",
        note = "a validated context comes only from validation: `raw.validate()?` or `#[with_context(tenant)]`"
    )]
    pub trait Sealed {}
}

/// The state of a [`Ctx`]: [`Unvalidated`] or [`Validated`]. Sealed.
pub trait ContextState: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    type Fields: Clone + fmt::Debug + Send + Sync + 'static;
}

/// The state of a context that has not been validated: raw, optional text.
///
/// A `Ctx<Unvalidated>` cannot open a tenant transaction.
#[derive(Debug)]
pub enum Unvalidated {}

/// The state of a validated context.
///
/// The tenant is always guaranteed. Each parameter says whether one more
/// field is guaranteed: `A` is [`WithAgent`] or [`NoAgent`], `C` is
/// [`WithConversation`] or [`NoConversation`], `L` is [`WithCollection`] or
/// [`NoCollection`]. `Validated` alone guarantees the tenant only.
///
/// ```
/// use tenant_core::{Ctx, Validated, WithAgent, WithConversation};
/// // What `#[with_context(tenant, agent, conversation)]` hands to its body:
/// type AgentChatCtx = Ctx<Validated<WithAgent, WithConversation>>;
/// ```
pub struct Validated<A = NoAgent, C = NoConversation, L = NoCollection> {
    _never: PhantomData<Markers<A, C, L>>,
    _uninhabited: std::convert::Infallible,
}

/// `fn() -> _` keeps `Validated` `Send + Sync` whatever the markers are.
type Markers<A, C, L> = fn() -> (A, C, L);

impl<A, C, L> fmt::Debug for Validated<A, C, L> {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self._uninhabited {}
    }
}

macro_rules! markers {
    ($trait:ident, $field:expr, $with:ident, $without:ident, $what:literal) => {
        #[doc = concat!("Whether a validated context guarantees ", $what, ": [`", stringify!($with), "`] or [`", stringify!($without), "`]. Sealed.")]
        pub trait $trait: sealed::Sealed + Send + Sync + 'static {
            #[doc(hidden)]
            const REQUIRED: Option<Field>;
        }
        #[doc = concat!("Marker: the context guarantees ", $what, ".")]
        #[derive(Debug)]
        pub enum $with {}
        #[doc = concat!("Marker: the context does not guarantee ", $what, " (it may still carry one).")]
        #[derive(Debug)]
        pub enum $without {}
        impl sealed::Sealed for $with {}
        impl sealed::Sealed for $without {}
        impl $trait for $with {
            const REQUIRED: Option<Field> = Some($field);
        }
        impl $trait for $without {
            const REQUIRED: Option<Field> = None;
        }
    };
}

markers!(AgentState, Field::Agent, WithAgent, NoAgent, "an agent");
markers!(
    ConversationState,
    Field::Conversation,
    WithConversation,
    NoConversation,
    "a conversation"
);
markers!(
    CollectionState,
    Field::Collection,
    WithCollection,
    NoCollection,
    "a collection"
);

impl sealed::Sealed for Unvalidated {}
impl<A, C, L> sealed::Sealed for Validated<A, C, L> {}

impl ContextState for Unvalidated {
    type Fields = RawFields;
}

impl<A: AgentState, C: ConversationState, L: CollectionState> ContextState for Validated<A, C, L> {
    type Fields = ValidFields;
}

/// Implemented by every [`Validated`] state: a context in this state may open
/// a tenant transaction and be put in scope.
#[diagnostic::on_unimplemented(
    message = "`Ctx<{Self}>` is not a validated context",
    label = "this context has not been validated",
    note = "validate it first: `let ctx: Ctx<Validated> = raw.validate()?;`",
    note = "or take it from `#[with_context(tenant)]`, which validates before the body runs"
)]
pub trait IsValidated: ContextState<Fields = ValidFields> {
    #[doc(hidden)]
    const REQUIRES: [Option<Field>; 3];
}

impl<A: AgentState, C: ConversationState, L: CollectionState> IsValidated for Validated<A, C, L> {
    const REQUIRES: [Option<Field>; 3] = [A::REQUIRED, C::REQUIRED, L::REQUIRED];
}

/// A validated context that guarantees an agent.
#[diagnostic::on_unimplemented(
    message = "this context does not guarantee an agent",
    label = "`agent_id()` is only available on a context that required the agent",
    note = "add `agent` to the attribute, `#[with_context(tenant, agent)]`, and take `Ctx<Validated<WithAgent>>`",
    note = "or call `agent_id_opt()`, which returns `Option<&AgentId>`"
)]
pub trait HasAgent: IsValidated {}
impl<C: ConversationState, L: CollectionState> HasAgent for Validated<WithAgent, C, L> {}

/// A validated context that guarantees a conversation.
#[diagnostic::on_unimplemented(
    message = "this context does not guarantee a conversation",
    label = "`conversation_id()` is only available on a context that required the conversation",
    note = "add `conversation` to the attribute, `#[with_context(tenant, conversation)]`, and take `Ctx<Validated<_, WithConversation>>`",
    note = "or call `conversation_id_opt()`, which returns `Option<&ConversationId>`"
)]
pub trait HasConversation: IsValidated {}
impl<A: AgentState, L: CollectionState> HasConversation for Validated<A, WithConversation, L> {}

/// A validated context that guarantees a collection.
#[diagnostic::on_unimplemented(
    message = "this context does not guarantee a collection",
    label = "`collection_id()` is only available on a context that required the collection",
    note = "add `collection` to the attribute, `#[with_context(tenant, collection)]`, and take `Ctx<Validated<_, _, WithCollection>>`",
    note = "or call `collection_id_opt()`, which returns `Option<&CollectionId>`"
)]
pub trait HasCollection: IsValidated {}
impl<A: AgentState, C: ConversationState> HasCollection for Validated<A, C, WithCollection> {}

/// What an unvalidated context holds. Not constructible outside this crate.
#[doc(hidden)]
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawFields {
    pub(crate) tenant: Option<Arc<str>>,
    pub(crate) agent: Option<Arc<str>>,
    pub(crate) conversation: Option<Arc<str>>,
    pub(crate) collection: Option<Arc<str>>,
}

impl fmt::Debug for RawFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unvalidated")
            .field("tenant", &self.tenant)
            .field("agent", &self.agent)
            .field("conversation", &self.conversation)
            .field("collection", &self.collection)
            .finish()
    }
}

/// What a validated context holds. Not constructible outside this crate.
#[doc(hidden)]
#[derive(Clone)]
pub struct ValidFields {
    pub(crate) tenant: TenantId,
    pub(crate) agent: Option<AgentId>,
    pub(crate) conversation: Option<ConversationId>,
    pub(crate) collection: Option<CollectionId>,
    /// How the context came to be: set only by this crate, never from
    /// outside (see [`Provenance`]).
    pub(crate) provenance: Provenance,
}

/// Two contexts are equal when they carry the same values, whatever their
/// [`Provenance`].
impl PartialEq for ValidFields {
    fn eq(&self, other: &Self) -> bool {
        self.tenant == other.tenant
            && self.agent == other.agent
            && self.conversation == other.conversation
            && self.collection == other.collection
    }
}
impl Eq for ValidFields {}

/// How a validated context came to be: what a
/// [`TenantPool` that requires authorization](https://docs.rs/tenant-sqlx)
/// checks before it opens a transaction.
///
/// The mark is carried privately inside the context: nothing outside
/// `tenant_core` can set it, and it survives every operation that keeps the
/// same values ([`Clone`], [`Ctx::erase`], [`Ctx::require`], [`Ctx::scope`]
/// and [`current`](crate::current)). Going back to raw values
/// ([`Ctx::to_unvalidated`], an [`Envelope`](crate::envelope::Envelope), HTTP
/// headers) drops it.
///
/// ```
/// use tenant_core::{Ctx, Provenance, Validated};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let raw = Ctx::unvalidated().with_tenant("acme");
/// let ctx: Ctx<Validated> = raw.validate().unwrap();
/// assert_eq!(ctx.provenance(), Provenance::Unchecked);
///
/// let allow_acme = |ctx: Ctx<Validated>| async move {
///     if ctx.tenant_id().as_str() == "acme" { Ok(()) }
///     else { Err(tenant_core::ContextError::TenantUnknown) }
/// };
/// // Authorized for the caller in scope (here: a trusted acme job).
/// let job = ctx.trust("test: an acme job");
/// let ctx = tenant_core::Incoming::on_behalf_of(&job)
///     .scope(ctx.authorize(&allow_acme))
///     .await
///     .unwrap();
/// assert_eq!(ctx.provenance(), Provenance::Authorized);
/// assert!(ctx.is_authorized());
/// // Back to raw values and validated again: the mark is gone.
/// let again: Ctx<Validated> = ctx.to_unvalidated().validate().unwrap();
/// assert!(!again.is_authorized());
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provenance {
    /// Only the identifier rules were checked ([`Ctx::validate`]): the
    /// tenant is whatever the string said.
    Unchecked,
    /// The context is the authenticated caller's ([`Principal`](crate::Principal)) and the
    /// application's [`Validator`] accepted it ([`Ctx::validate_with`],
    /// [`Ctx::authorize`], [`Incoming::validate`](crate::Incoming::validate),
    /// `#[with_context]` under a layer with an authenticated source and a
    /// validator).
    Authorized,
    /// Code declared it trusted with [`Ctx::trust`], giving this reason
    /// (logged at `INFO`).
    Trusted {
        /// The reason given to [`Ctx::trust`].
        reason: &'static str,
    },
}

impl fmt::Debug for ValidFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Validated");
        d.field("tenant", &self.tenant.as_str());
        if let Some(a) = &self.agent {
            d.field("agent", &a.as_str());
        }
        if let Some(c) = &self.conversation {
            d.field("conversation", &c.as_str());
        }
        if let Some(l) = &self.collection {
            d.field("collection", &l.as_str());
        }
        d.finish()
    }
}

impl ValidFields {
    fn has(&self, field: Field) -> bool {
        match field {
            Field::Tenant => true,
            Field::Agent => self.agent.is_some(),
            Field::Conversation => self.conversation.is_some(),
            Field::Collection => self.collection.is_some(),
        }
    }
}

/// A tenant context in state `S` ([`Validated`] by default). Cheap to clone:
/// one reference count.
///
/// * [`Ctx<Unvalidated>`] holds what arrived (optional raw strings from
///   headers, a message envelope or a test). Anyone can build one.
/// * [`Ctx<Validated<A, C, L>>`](Validated) is what validation produces. It
///   always carries a [`TenantId`], and carries an agent, conversation or
///   collection where the markers say so ([`WithAgent`], [`WithConversation`],
///   [`WithCollection`]). The only way to one is [`Ctx::validate`] (or
///   [`Ctx::validate_with`], or `#[with_context]`, which calls them).
///
/// ```
/// use tenant_core::{Ctx, Validated, WithAgent};
///
/// let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
/// let ctx: Ctx<Validated<WithAgent>> = raw.validate()?;
/// assert_eq!(ctx.tenant_id().as_str(), "acme");
/// assert_eq!(ctx.agent_id().as_str(), "agent-7"); // guaranteed: no Option
/// # Ok::<(), tenant_core::ContextError>(())
/// ```
///
/// Asking a context for a field it does not guarantee does not compile:
///
/// ```compile_fail
/// use tenant_core::{Ctx, Validated};
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
/// ctx.agent_id(); // error: this context does not guarantee an agent
/// ```
pub struct Ctx<S: ContextState = Validated> {
    fields: Arc<S::Fields>,
}

impl<S: ContextState> Clone for Ctx<S> {
    fn clone(&self) -> Self {
        Ctx {
            fields: Arc::clone(&self.fields),
        }
    }
}

impl<S: ContextState> fmt::Debug for Ctx<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ctx::")?;
        fmt::Debug::fmt(&*self.fields, f)
    }
}

impl<S: ContextState> PartialEq for Ctx<S>
where
    S::Fields: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fields, &other.fields) || self.fields == other.fields
    }
}

impl Default for Ctx<Unvalidated> {
    fn default() -> Self {
        Ctx::unvalidated()
    }
}

impl Ctx<Unvalidated> {
    /// An empty unvalidated context, to be filled with the `with_*` methods.
    ///
    /// ```
    /// use tenant_core::Ctx;
    /// let raw = Ctx::unvalidated().with_tenant("acme");
    /// assert_eq!(raw.raw_tenant(), Some("acme"));
    /// ```
    pub fn unvalidated() -> Self {
        Ctx {
            fields: Arc::new(RawFields::default()),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut RawFields)) -> Self {
        f(Arc::make_mut(&mut self.fields));
        self
    }

    /// Sets the raw tenant, as it arrived. Nothing is checked yet.
    pub fn with_tenant(self, tenant: impl Into<String>) -> Self {
        let v = Arc::<str>::from(tenant.into());
        self.edit(|r| r.tenant = Some(v))
    }
    /// Sets the raw agent, as it arrived. Nothing is checked yet.
    pub fn with_agent(self, agent: impl Into<String>) -> Self {
        let v = Arc::<str>::from(agent.into());
        self.edit(|r| r.agent = Some(v))
    }
    /// Sets the raw conversation, as it arrived. Nothing is checked yet.
    pub fn with_conversation(self, conversation: impl Into<String>) -> Self {
        let v = Arc::<str>::from(conversation.into());
        self.edit(|r| r.conversation = Some(v))
    }
    /// Sets the raw collection, as it arrived. Nothing is checked yet.
    pub fn with_collection(self, collection: impl Into<String>) -> Self {
        let v = Arc::<str>::from(collection.into());
        self.edit(|r| r.collection = Some(v))
    }
    /// Sets (or clears) the raw value of `field`.
    pub fn with_field(self, field: Field, value: Option<String>) -> Self {
        let v = value.map(Arc::<str>::from);
        self.edit(|r| *r.slot_mut(field) = v)
    }

    /// The raw tenant, if one arrived. Not validated: may be anything.
    pub fn raw_tenant(&self) -> Option<&str> {
        self.fields.tenant.as_deref()
    }
    /// The raw agent, if one arrived. Not validated.
    pub fn raw_agent(&self) -> Option<&str> {
        self.fields.agent.as_deref()
    }
    /// The raw conversation, if one arrived. Not validated.
    pub fn raw_conversation(&self) -> Option<&str> {
        self.fields.conversation.as_deref()
    }
    /// The raw collection, if one arrived. Not validated.
    pub fn raw_collection(&self) -> Option<&str> {
        self.fields.collection.as_deref()
    }
    /// The raw value of `field`, if one arrived.
    pub fn raw(&self, field: Field) -> Option<&str> {
        self.fields.slot(field)
    }

    /// Checks the identifier rules and the fields `S` requires, and gives a
    /// context in state `S`. No I/O; see [`validate_with`](Self::validate_with)
    /// for the application's own check.
    ///
    /// Fields that `S` does not require are kept when present and valid; a
    /// present but malformed optional field is still an error (a client that
    /// sends garbage hears about it).
    ///
    /// ```
    /// use tenant_core::{ContextError, Ctx, Validated, WithConversation, NoAgent};
    ///
    /// let raw = Ctx::unvalidated().with_tenant("acme");
    /// let err = raw.validate::<Validated<NoAgent, WithConversation>>().unwrap_err();
    /// assert_eq!(err, ContextError::ConversationRequired);
    /// ```
    pub fn validate<S: IsValidated>(&self) -> Result<Ctx<S>, ContextError> {
        let r = &*self.fields;
        let tenant = match &r.tenant {
            None => return Err(ContextError::TenantRequired),
            Some(t) => {
                TenantId::parse_shared(t).map_err(|e| ContextError::invalid(Field::Tenant, e))?
            }
        };
        let agent = parse_opt(&r.agent, Field::Agent, AgentId::parse_shared)?;
        let conversation = parse_opt(
            &r.conversation,
            Field::Conversation,
            ConversationId::parse_shared,
        )?;
        let collection = parse_opt(&r.collection, Field::Collection, CollectionId::parse_shared)?;
        Ctx::from_fields(Arc::new(ValidFields {
            tenant,
            agent,
            conversation,
            collection,
            provenance: Provenance::Unchecked,
        }))
    }

    /// [`validate`](Self::validate), then the application's own asynchronous
    /// check (tenant exists and is active...), for the caller in scope. The
    /// result is marked [`Provenance::Authorized`].
    ///
    /// Authorizing needs an authenticated caller, the [`Principal`](crate::Principal) of the
    /// [`Incoming`](crate::Incoming) context in scope: the context must be
    /// the principal's (else [`ContextError::TenantMismatch`] or
    /// [`ContextError::AgentMismatch`]), and with no principal in scope it
    /// is [`ContextError::PrincipalRequired`]. A validator that only says a
    /// tenant exists cannot, by itself, authorize a tenant nobody
    /// authenticated for.
    ///
    /// ```
    /// use tenant_core::{ContextError, Ctx, Incoming, Validated};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let only_acme = |ctx: Ctx<Validated>| async move {
    ///     if ctx.tenant_id().as_str() == "acme" { Ok(()) }
    ///     else { Err(ContextError::forbidden("unknown tenant")) }
    /// };
    /// let raw = Ctx::unvalidated().with_tenant("acme");
    /// // Nobody authenticated: nothing to authorize for.
    /// let err = raw.validate_with::<Validated>(&only_acme).await.unwrap_err();
    /// assert_eq!(err.code(), "PRINCIPAL_REQUIRED");
    ///
    /// // Work done for a trusted acme job: acme is authorized, globex is not.
    /// let job: Ctx = raw.validate()?.trust("job enqueued by an authorized request");
    /// Incoming::on_behalf_of(&job).scope(async {
    ///     let ctx: Ctx = raw.validate_with(&only_acme).await?;
    ///     assert!(ctx.is_authorized());
    ///     let globex = Ctx::unvalidated().with_tenant("globex");
    ///     let err = globex.validate_with::<Validated>(&only_acme).await.unwrap_err();
    ///     assert_eq!(err.code(), "TENANT_MISMATCH");
    ///     Ok::<(), ContextError>(())
    /// }).await?;
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub async fn validate_with<S: IsValidated>(
        &self,
        validator: &dyn Validator,
    ) -> Result<Ctx<S>, ContextError> {
        let ctx = self.validate::<S>()?;
        ctx.authorize(validator).await
    }
}

fn parse_opt<T>(
    raw: &Option<Arc<str>>,
    field: Field,
    parse: fn(&Arc<str>) -> Result<T, crate::IdError>,
) -> Result<Option<T>, ContextError> {
    raw.as_ref()
        .map(|s| parse(s).map_err(|e| ContextError::invalid(field, e)))
        .transpose()
}

impl RawFields {
    fn slot(&self, field: Field) -> Option<&str> {
        match field {
            Field::Tenant => self.tenant.as_deref(),
            Field::Agent => self.agent.as_deref(),
            Field::Conversation => self.conversation.as_deref(),
            Field::Collection => self.collection.as_deref(),
        }
    }
    fn slot_mut(&mut self, field: Field) -> &mut Option<Arc<str>> {
        match field {
            Field::Tenant => &mut self.tenant,
            Field::Agent => &mut self.agent,
            Field::Conversation => &mut self.conversation,
            Field::Collection => &mut self.collection,
        }
    }
}

impl<S: ContextState> Ctx<S> {
    /// The tenant. Guaranteed on every validated context.
    ///
    /// ```
    /// # use tenant_core::{Ctx, Validated};
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// assert_eq!(ctx.tenant_id().as_str(), "acme");
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn tenant_id(&self) -> &TenantId
    where
        S: IsValidated,
    {
        &self.fields.tenant
    }

    /// The agent, guaranteed because the context required it.
    pub fn agent_id(&self) -> &AgentId
    where
        S: HasAgent,
    {
        match &self.fields.agent {
            Some(a) => a,
            // `from_fields` refuses to build a `WithAgent` context without one.
            None => unreachable!("a WithAgent context always carries an agent"),
        }
    }

    /// The conversation, guaranteed because the context required it.
    pub fn conversation_id(&self) -> &ConversationId
    where
        S: HasConversation,
    {
        match &self.fields.conversation {
            Some(c) => c,
            None => unreachable!("a WithConversation context always carries a conversation"),
        }
    }

    /// The collection, guaranteed because the context required it.
    pub fn collection_id(&self) -> &CollectionId
    where
        S: HasCollection,
    {
        match &self.fields.collection {
            Some(c) => c,
            None => unreachable!("a WithCollection context always carries a collection"),
        }
    }

    /// The agent, if the context carries one (required or not).
    pub fn agent_id_opt(&self) -> Option<&AgentId>
    where
        S: IsValidated,
    {
        self.fields.agent.as_ref()
    }
    /// The conversation, if the context carries one.
    pub fn conversation_id_opt(&self) -> Option<&ConversationId>
    where
        S: IsValidated,
    {
        self.fields.conversation.as_ref()
    }
    /// The collection, if the context carries one.
    pub fn collection_id_opt(&self) -> Option<&CollectionId>
    where
        S: IsValidated,
    {
        self.fields.collection.as_ref()
    }

    /// The same context with no guarantee beyond the tenant. Free (one
    /// reference count). This is what is stored in the task-local scope.
    pub fn erase(&self) -> Ctx<Validated>
    where
        S: IsValidated,
    {
        Ctx {
            fields: Arc::clone(&self.fields),
        }
    }

    /// The same context as state `T`, if it carries every field `T` requires.
    ///
    /// ```
    /// # use tenant_core::{ContextError, Ctx, Validated, WithAgent};
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// assert_eq!(ctx.require::<Validated<WithAgent>>().unwrap_err(), ContextError::AgentRequired);
    /// # Ok::<(), ContextError>(())
    /// ```
    pub fn require<T: IsValidated>(&self) -> Result<Ctx<T>, ContextError>
    where
        S: IsValidated,
    {
        Ctx::from_fields(Arc::clone(&self.fields))
    }

    /// How this context came to be: only the identifier rules, the
    /// application's validator, or [`trust`](Self::trust).
    pub fn provenance(&self) -> Provenance
    where
        S: IsValidated,
    {
        self.fields.provenance
    }

    /// Whether the application's validator accepted this context, or code
    /// declared it trusted ([`Provenance::Authorized`] or
    /// [`Provenance::Trusted`]).
    pub fn is_authorized(&self) -> bool
    where
        S: IsValidated,
    {
        !matches!(self.fields.provenance, Provenance::Unchecked)
    }

    /// Runs the application's `validator` on this context and, if it
    /// accepts and the context is the [`Principal`](crate::Principal)'s in scope, gives the
    /// same context marked [`Provenance::Authorized`]. See
    /// [`validate_with`](Ctx::validate_with) for the rules.
    ///
    /// ```
    /// use tenant_core::{ContextError, Ctx, Incoming, Validated};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let any = |_: Ctx<Validated>| async { Ok(()) };
    /// let acme: Ctx = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
    /// let globex: Ctx = Ctx::unvalidated().with_tenant("globex").validate().unwrap();
    /// let request = acme.trust("test: acme authenticated");
    /// Incoming::on_behalf_of(&request).scope(async {
    ///     assert!(acme.authorize(&any).await.unwrap().is_authorized());
    ///     // A validator that accepts every tenant still cannot authorize
    ///     // a tenant the caller did not authenticate for.
    ///     assert_eq!(globex.authorize(&any).await.unwrap_err().code(), "TENANT_MISMATCH");
    /// }).await;
    /// # });
    /// ```
    pub async fn authorize(&self, validator: &dyn Validator) -> Result<Ctx<S>, ContextError>
    where
        S: IsValidated,
    {
        let principal =
            crate::scope::Incoming::current_principal().ok_or(ContextError::PrincipalRequired)?;
        principal.admits(self)?;
        validator.check(self.erase()).await?;
        Ok(self.clone().marked(Provenance::Authorized))
    }

    /// The same context marked [`Provenance::Trusted`]: the explicit escape
    /// for code that has no request to authorize (a worker that received an
    /// [`Envelope`](crate::envelope::Envelope) from a producer it trusts, an
    /// admin tool). Logged at `INFO` (target `tenant_core::trust`) with
    /// `reason`, which is a literal so that it is visible in review.
    ///
    /// ```
    /// use tenant_core::{Ctx, Provenance, Validated};
    ///
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// let ctx = ctx.trust("nightly reindex job, enqueued by the API after authorization");
    /// assert!(matches!(ctx.provenance(), Provenance::Trusted { .. }));
    /// # Ok::<(), tenant_core::ContextError>(())
    /// ```
    pub fn trust(&self, reason: &'static str) -> Ctx<S>
    where
        S: IsValidated,
    {
        tracing::info!(
            target: "tenant_core::trust",
            tenant_id = %self.fields.tenant,
            reason,
            "context trusted without a validator"
        );
        self.clone().marked(Provenance::Trusted { reason })
    }

    /// This context with `provenance`: in place when nothing else holds it.
    pub(crate) fn marked(mut self, provenance: Provenance) -> Ctx<S>
    where
        S: IsValidated,
    {
        match Arc::get_mut(&mut self.fields) {
            Some(f) => f.provenance = provenance,
            None => {
                let mut f = ValidFields::clone(&self.fields);
                f.provenance = provenance;
                self.fields = Arc::new(f);
            }
        }
        self
    }

    /// The context as raw values again (to forward it, or to re-validate it
    /// with more requirements). The raw values carry no [`Provenance`].
    pub fn to_unvalidated(&self) -> Ctx<Unvalidated>
    where
        S: IsValidated,
    {
        let f = &*self.fields;
        Ctx {
            fields: Arc::new(RawFields {
                tenant: Some(f.tenant.shared()),
                agent: f.agent.as_ref().map(AgentId::shared),
                conversation: f.conversation.as_ref().map(ConversationId::shared),
                collection: f.collection.as_ref().map(CollectionId::shared),
            }),
        }
    }
}

impl<S: IsValidated> Ctx<S> {
    /// The one constructor of a validated context: checks that every field
    /// `S` requires is present.
    pub(crate) fn from_fields(fields: Arc<ValidFields>) -> Result<Self, ContextError> {
        for field in S::REQUIRES.into_iter().flatten() {
            if !fields.has(field) {
                return Err(ContextError::required(field));
            }
        }
        Ok(Ctx { fields })
    }
}

impl<S: IsValidated> fmt::Display for Ctx<S> {
    /// The log prefix: `[t:acme a:agent-7 c:conv-1 l:docs]`,
    /// listing the fields present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &*self.fields;
        write!(f, "[t:{}", v.tenant)?;
        if let Some(a) = &v.agent {
            write!(f, " a:{a}")?;
        }
        if let Some(c) = &v.conversation {
            write!(f, " c:{c}")?;
        }
        if let Some(l) = &v.collection {
            write!(f, " l:{l}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn ctx_is_send_sync_clone_static() {
        is_send_sync::<Ctx<Validated>>();
        is_send_sync::<Ctx<Validated<WithAgent, WithConversation, WithCollection>>>();
        is_send_sync::<Ctx<Unvalidated>>();
    }

    #[test]
    fn required_fields_are_checked() {
        let raw = Ctx::unvalidated().with_tenant("acme").with_agent("a1");
        let ctx = raw.validate::<Validated<WithAgent>>().unwrap();
        assert_eq!(ctx.agent_id().as_str(), "a1");
        assert_eq!(
            raw.validate::<Validated<WithAgent, WithConversation>>()
                .unwrap_err(),
            ContextError::ConversationRequired
        );
        assert_eq!(
            raw.validate::<Validated<NoAgent, NoConversation, WithCollection>>()
                .unwrap_err(),
            ContextError::CollectionRequired
        );
    }

    #[test]
    fn malformed_optional_field_is_an_error() {
        let raw = Ctx::unvalidated().with_tenant("acme").with_agent("x;y");
        assert_eq!(
            raw.validate::<Validated>().unwrap_err().code(),
            "AGENT_INVALID"
        );
    }

    #[test]
    fn display_is_the_log_prefix() {
        let ctx: Ctx<Validated> = Ctx::unvalidated()
            .with_tenant("acme")
            .with_agent("agent-7")
            .validate()
            .unwrap();
        assert_eq!(ctx.to_string(), "[t:acme a:agent-7]");
    }

    #[test]
    fn round_trip_through_unvalidated() {
        let ctx: Ctx<Validated> = Ctx::unvalidated()
            .with_tenant("acme")
            .with_collection("docs")
            .validate()
            .unwrap();
        let again: Ctx<Validated> = ctx.to_unvalidated().validate().unwrap();
        assert_eq!(ctx, again);
    }
}
