//! Identifiers that are parsed, never merely checked.
//!
//! A [`TenantId`] (and its siblings [`AgentId`], [`ConversationId`],
//! [`CollectionId`]) can only be obtained through [`parse`](TenantId::parse)
//! or [`FromStr`], so holding one is proof that the text obeys the rules:
//!
//! * 1 to [`MAX_ID_LEN`] bytes;
//! * lower-case ASCII letters, digits and `-`, `_`, `.`, `:` only;
//! * not made of punctuation alone;
//! * not a reserved word in any case (`default`, `null`, `none`,
//!   `undefined`, `*`).
//!
//! Every rejection has its own [`IdError`] variant with a stable
//! [`code`](IdError::code).
//!
//! # One spelling per identifier
//!
//! Upper case is refused ([`IdError::UpperCase`]), not folded: `ACME` is
//! not another spelling of `acme`, it is an error, so two tenants (or two
//! agents of one tenant) can never differ only by case. Refusing keeps every
//! accepted text canonical as sent: the raw value of a header and the
//! validated id are the same string, so comparing them (the incoming
//! context against an enclosing one, a header against a token claim) needs
//! no folding, and parsing never has to allocate a folded copy. A source
//! that is case-insensitive by nature, such as a host name, folds before it
//! parses.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Words that look like a value but mean "no tenant"; rejected in any case.
pub const RESERVED_IDS: &[&str] = &["default", "null", "none", "undefined", "*"];

/// Why a piece of text is not a valid identifier.
///
/// Each variant has a stable machine-readable [`code`](IdError::code).
/// Byte offsets (`index`) count from 0 in the original text.
///
/// ```
/// use tenant_core::{IdError, TenantId};
///
/// assert_eq!(TenantId::parse(""), Err(IdError::Empty));
/// assert_eq!(TenantId::parse("Default").unwrap_err().code(), "ID_RESERVED");
/// assert!(matches!(TenantId::parse("a b"), Err(IdError::Whitespace { index: 1 })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text is empty.
    #[error("is empty; send a non-empty identifier")]
    Empty,
    /// The text is longer than [`MAX_ID_LEN`] bytes.
    #[error("is {len} bytes long; at most {max} bytes are allowed", max = MAX_ID_LEN)]
    TooLong {
        /// The length of the rejected text, in bytes.
        len: usize,
    },
    /// The text is a reserved word such as `default` (compared in any case).
    ///
    /// Through a [`ContextError`](crate::ContextError) the message names the
    /// field: "the agent id is the reserved word `default`, which never
    /// names a real agent".
    #[error("is the reserved word `{word}`, a placeholder that never names a real identifier")]
    Reserved {
        /// The reserved word, in lower case.
        word: &'static str,
    },
    /// A character outside ASCII (homoglyphs, full-width digits, zero-width
    /// and bidirectional characters all land here).
    #[error("contains the non-ASCII character {ch:?} at byte {index}; only lower-case ASCII letters, digits and `-_.:` are allowed")]
    NonAscii {
        /// Byte offset of the character.
        index: usize,
        /// The character.
        ch: char,
    },
    /// An ASCII control character (NUL, TAB, CR, LF, DEL, ...).
    #[error("contains a control character {ch:?} at byte {index}")]
    ControlChar {
        /// Byte offset of the character.
        index: usize,
        /// The character.
        ch: char,
    },
    /// An upper-case ASCII letter: identifiers are lower case, so that two
    /// cannot differ only by case: `ACME` is an error, not another spelling of `acme`.
    #[error("contains the upper-case letter {ch:?} at byte {index}; identifiers are lower case, so that two of them never differ only by case")]
    UpperCase {
        /// Byte offset of the letter.
        index: usize,
        /// The letter.
        ch: char,
    },
    /// A space.
    #[error("contains a space at byte {index}")]
    Whitespace {
        /// Byte offset of the space.
        index: usize,
    },
    /// A quote character: `'`, `"` or `` ` ``.
    #[error("contains the quote character {ch:?} at byte {index}")]
    Quote {
        /// Byte offset of the character.
        index: usize,
        /// The character.
        ch: char,
    },
    /// Any other ASCII punctuation than `-_.:` (for example `;`, `%`, `\`, `/`).
    #[error("contains the character {ch:?} at byte {index}; only lower-case ASCII letters, digits and `-_.:` are allowed")]
    ForbiddenChar {
        /// Byte offset of the character.
        index: usize,
        /// The character.
        ch: char,
    },
    /// The text is made of `-_.:` alone.
    #[error("is made of punctuation only; it needs at least one letter or digit")]
    PunctuationOnly,
}

impl IdError {
    /// A stable, machine-readable code for this rejection.
    ///
    /// ```
    /// # use tenant_core::TenantId;
    /// assert_eq!(TenantId::parse("a;b").unwrap_err().code(), "ID_FORBIDDEN_CHAR");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Empty => "ID_EMPTY",
            IdError::TooLong { .. } => "ID_TOO_LONG",
            IdError::Reserved { .. } => "ID_RESERVED",
            IdError::NonAscii { .. } => "ID_NON_ASCII",
            IdError::UpperCase { .. } => "ID_UPPER_CASE",
            IdError::ControlChar { .. } => "ID_CONTROL_CHAR",
            IdError::Whitespace { .. } => "ID_WHITESPACE",
            IdError::Quote { .. } => "ID_QUOTE",
            IdError::ForbiddenChar { .. } => "ID_FORBIDDEN_CHAR",
            IdError::PunctuationOnly => "ID_PUNCTUATION_ONLY",
        }
    }
}

/// Checks `s` against the identifier rules. The single place the rules live.
fn check(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    if let Some(word) = RESERVED_IDS.iter().find(|w| s.eq_ignore_ascii_case(w)) {
        return Err(IdError::Reserved { word });
    }
    // Every handler call validates its context, so the accepting path is one
    // table look-up per byte; the rejecting path below says why.
    let mut has_alnum = false;
    for &b in s.as_bytes() {
        match BYTE_CLASS[usize::from(b)] {
            ALNUM => has_alnum = true,
            PUNCT => {}
            _ => return Err(rejected_char(s)),
        }
    }
    if !has_alnum {
        return Err(IdError::PunctuationOnly);
    }
    Ok(())
}

const FORBIDDEN: u8 = 0;
const ALNUM: u8 = 1;
const PUNCT: u8 = 2;

/// The class of each byte: lower-case ASCII letters and digits, the
/// punctuation `-_.:`, or forbidden (everything else, including upper case
/// and every non-ASCII byte).
const BYTE_CLASS: [u8; 256] = {
    let mut table = [FORBIDDEN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            table[b] = ALNUM;
        } else if matches!(c, b'-' | b'_' | b'.' | b':') {
            table[b] = PUNCT;
        }
        b += 1;
    }
    table
};

/// Why `s`, which has a forbidden byte, is rejected: the first offending
/// character and its kind.
fn rejected_char(s: &str) -> IdError {
    for (index, ch) in s.char_indices() {
        match ch {
            'a'..='z' | '0'..='9' | '-' | '_' | '.' | ':' => {}
            'A'..='Z' => return IdError::UpperCase { index, ch },
            ' ' => return IdError::Whitespace { index },
            '\'' | '"' | '`' => return IdError::Quote { index, ch },
            c if c.is_ascii_control() => return IdError::ControlChar { index, ch },
            c if !c.is_ascii() => return IdError::NonAscii { index, ch },
            _ => return IdError::ForbiddenChar { index, ch },
        }
    }
    // Unreachable for a string with a forbidden byte; kept total so that a
    // mistake in the table is a wrong error, never a panic.
    IdError::ForbiddenChar { index: 0, ch: '\0' }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $example:literal) => {
        $(#[$doc])*
        ///
        /// Cheap to clone (reference counted). There is no `From<&str>`: the
        /// only ways in are [`parse`](Self::parse) and [`FromStr`].
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            #[doc = concat!("Parses a ", $what, ", applying the identifier rules of this module.")]
            ///
            /// ```
            #[doc = concat!("use tenant_core::", stringify!($name), ";")]
            #[doc = concat!("let id = ", stringify!($name), "::parse(\"", $example, "\").unwrap();")]
            #[doc = concat!("assert_eq!(id.as_str(), \"", $example, "\");")]
            #[doc = concat!("assert!(", stringify!($name), "::parse(\"default\").is_err());")]
            /// ```
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check(s)?;
                Ok(Self(Arc::from(s)))
            }

            /// [`parse`](Self::parse) for text that is shared already: a
            /// valid one is kept without copying (validation runs on every
            /// handler call, so it should not allocate).
            pub(crate) fn parse_shared(s: &Arc<str>) -> Result<Self, IdError> {
                check(s)?;
                Ok(Self(Arc::clone(s)))
            }

            /// The text, shared.
            pub(crate) fn shared(&self) -> Arc<str> {
                Arc::clone(&self.0)
            }

            /// The identifier as text; always lower-case ASCII and safe to
            /// embed in a quoted SQL literal or an HTTP header.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// The tenant that owns a piece of data. The one identifier every
    /// validated context carries.
    ///
    /// A tenant id has one spelling: lower case. `ACME` is refused
    /// ([`IdError::UpperCase`], code `ID_UPPER_CASE`), never folded into
    /// `acme`, so two tenants cannot differ only by case and the id a client
    /// sent is exactly the id that reaches the database, the logs and the
    /// cache keys. The same rule holds for [`AgentId`], [`ConversationId`]
    /// and [`CollectionId`]. Fold a case-insensitive source (a host name)
    /// to lower case yourself before parsing it.
    ///
    /// ```
    /// use tenant_core::{IdError, TenantId};
    ///
    /// assert_eq!(TenantId::parse("acme").unwrap().as_str(), "acme");
    /// assert_eq!(TenantId::parse("ACME"), Err(IdError::UpperCase { index: 0, ch: 'A' }));
    /// assert_eq!(TenantId::parse("Acme").unwrap_err().code(), "ID_UPPER_CASE");
    /// ```
    TenantId,
    "tenant id",
    "acme-corp"
);
identifier!(
    /// The agent a request acts for (taken from the URL or from the incoming context).
    AgentId,
    "agent id",
    "agent-7"
);
identifier!(
    /// A conversation with an agent.
    ConversationId,
    "conversation id",
    "conv_456"
);
identifier!(
    /// A collection (of documents, vectors, ...) used in a conversation.
    CollectionId,
    "collection id",
    "coll.789"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in [
            "a",
            "a9",
            "acme-corp",
            "t_1.2:3",
            "-a",
            "9",
            &"x".repeat(64),
        ] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn upper_case_is_refused_not_folded() {
        assert_eq!(
            TenantId::parse("acMe"),
            Err(IdError::UpperCase { index: 2, ch: 'M' })
        );
        assert_eq!(TenantId::parse("acme").unwrap().as_str(), "acme");
    }

    #[test]
    fn reserved_words_are_caught_before_characters() {
        assert_eq!(TenantId::parse("*"), Err(IdError::Reserved { word: "*" }));
        assert_eq!(
            TenantId::parse("NuLl"),
            Err(IdError::Reserved { word: "null" })
        );
    }
}
