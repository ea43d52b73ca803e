use std::fmt;
use std::sync::Arc;

use tenant_core::ContextError;

/// Why a worker, a relay or a handler failed.
///
/// Handlers return it: `?` converts a [`ContextError`] (the context did not
/// validate: dead-lettered at once), an [`Error`](tenant_sqlx::Error) or an
/// `sqlx::Error` (retried with backoff). [`WorkerError::AlreadyProcessed`],
/// from [`Job::begin`](super::Job::begin), means the event's effect is
/// already committed: the worker acknowledges it.
///
/// ```
/// use tenant_worker::WorkerError;
/// assert_eq!(WorkerError::handler("upstream timed out").code(), "HANDLER_FAILED");
/// assert_eq!(WorkerError::reject("BAD_ORDER", "no lines").code(), "BAD_ORDER");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The envelope's context did not validate for the handler.
    #[error("context rejected: {0}")]
    Context(#[from] ContextError),
    /// The event was already processed (its id is in the processed table).
    #[error("event already processed")]
    AlreadyProcessed,
    /// The outbox holds no event with this id for this tenant, with this
    /// topic and envelope: a forged stream entry, or one whose outbox row
    /// was pruned before this consumer group processed it. Dead-lettered
    /// at once (`EVENT_NOT_IN_OUTBOX`).
    #[error("the outbox holds no such event for this tenant")]
    NotInOutbox,
    /// [`Job::begin`](super::Job::begin) was given a context of another
    /// tenant than the event's.
    #[error("the context's tenant is not the event's")]
    TenantMismatch,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] tenant_sqlx::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(Arc<redis::RedisError>),
    /// A payload could not be encoded.
    #[error("payload could not be encoded: {0}")]
    Encode(String),
    /// The handler failed in a way worth retrying.
    #[error("handler failed: {0}")]
    Handler(String),
    /// The handler refused the event for good (dead-lettered at once).
    #[error("{code}: {message}")]
    Rejected {
        /// A stable code, SCREAMING_SNAKE.
        code: &'static str,
        /// Why.
        message: String,
    },
}

impl WorkerError {
    /// A failure worth retrying.
    pub fn handler(message: impl fmt::Display) -> Self {
        WorkerError::Handler(message.to_string())
    }

    /// A refusal: the event goes to the dead-letter stream with `code`.
    pub fn reject(code: &'static str, message: impl fmt::Display) -> Self {
        WorkerError::Rejected {
            code,
            message: message.to_string(),
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkerError::Context(e) => e.code(),
            WorkerError::AlreadyProcessed => "ALREADY_PROCESSED",
            WorkerError::NotInOutbox => "EVENT_NOT_IN_OUTBOX",
            WorkerError::TenantMismatch => "TENANT_MISMATCH",
            WorkerError::Database(e) => e.code(),
            WorkerError::Redis(_) => "REDIS",
            WorkerError::Encode(_) => "PAYLOAD_ENCODE",
            WorkerError::Handler(_) => "HANDLER_FAILED",
            WorkerError::Rejected { code, .. } => code,
        }
    }

    /// Whether another attempt could succeed (database, Redis and handler
    /// failures); a context or tenant error, or a rejection, cannot.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WorkerError::Database(_) | WorkerError::Redis(_) | WorkerError::Handler(_)
        )
    }
}

impl From<sqlx::Error> for WorkerError {
    fn from(e: sqlx::Error) -> Self {
        WorkerError::Database(e.into())
    }
}

impl From<redis::RedisError> for WorkerError {
    fn from(e: redis::RedisError) -> Self {
        WorkerError::Redis(Arc::new(e))
    }
}

/// Why a message went to the dead-letter stream (its `reason` field).
///
/// ```
/// use tenant_worker::DeadLetterReason;
/// assert_eq!(DeadLetterReason::PayloadTooLarge.code(), "PAYLOAD_TOO_LARGE");
/// assert_eq!(DeadLetterReason::EventNotInOutbox.code(), "EVENT_NOT_IN_OUTBOX");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The entry has no `envelope` field, or no `event` id.
    EnvelopeMissing,
    /// The `event` field is not an outbox id: not a canonical decimal
    /// integer from 1 to `i64::MAX` (`0`, `-1`, `+5`, `007`, `2^63`, …).
    EventIdInvalid,
    /// The outbox holds no event with this id for the stream's tenant, with
    /// this topic and envelope (see [`WorkerError::NotInOutbox`]).
    EventNotInOutbox,
    /// The `envelope` field is not an envelope (not JSON, or not the shape).
    EnvelopeInvalid,
    /// The envelope is larger than the worker accepts.
    PayloadTooLarge,
    /// The payload does not decode as the handler's type.
    PayloadInvalid,
    /// The envelope names a tenant other than its stream's.
    TenantMismatch,
    /// The context did not validate (its code: `TENANT_REQUIRED`,
    /// `TENANT_INVALID`, …).
    Context(&'static str),
    /// The handler refused it, or failed on every attempt.
    Handler(&'static str),
    /// Every attempt failed.
    AttemptsExhausted,
}

impl DeadLetterReason {
    /// The stable code written as the entry's `reason`.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetterReason::EnvelopeMissing => "ENVELOPE_MISSING",
            DeadLetterReason::EventIdInvalid => "EVENT_ID_INVALID",
            DeadLetterReason::EventNotInOutbox => "EVENT_NOT_IN_OUTBOX",
            DeadLetterReason::EnvelopeInvalid => "ENVELOPE_INVALID",
            DeadLetterReason::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            DeadLetterReason::PayloadInvalid => "PAYLOAD_INVALID",
            DeadLetterReason::TenantMismatch => "TENANT_MISMATCH",
            DeadLetterReason::Context(code) | DeadLetterReason::Handler(code) => code,
            DeadLetterReason::AttemptsExhausted => "ATTEMPTS_EXHAUSTED",
        }
    }
}
