//! The error type shared by the encoder, the decoder and the serde adapters.

use std::fmt;

/// What went wrong, coarsely; [`Error::message`] has the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside a value.
    UnexpectedEof,
    /// A tag byte that is not allowed at this place of the grammar.
    UnexpectedTag,
    /// Structurally wrong data: bad UTF-8, a length that does not fit the input,
    /// an undefined class, type or value reference, trailing bytes, ...
    InvalidData,
    /// A configured [`Limits`](crate::Limits) bound was exceeded.
    LimitExceeded,
    /// A value that Hessian (or this crate) cannot represent, such as a `u64` above `i64::MAX`.
    Unsupported,
    /// An error raised by a `Serialize` or `Deserialize` implementation (wrong type,
    /// missing field, ...).
    Custom,
}

/// An encoding or decoding error, with the byte offset in the input where it was detected
/// (for decoding errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    offset: Option<usize>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            offset: None,
        }
    }

    pub(crate) fn at(kind: ErrorKind, offset: usize, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            offset: Some(offset),
        }
    }

    /// Attaches `offset` unless the error already carries one.
    pub(crate) fn or_at(mut self, offset: usize) -> Self {
        if self.offset.is_none() {
            self.offset = Some(offset);
        }
        self
    }

    /// The coarse category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The description of the problem, without the offset.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The byte offset in the decoded input at which the problem was detected, if known.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "hessian2: {} at byte offset {}", self.message, offset),
            None => write!(f, "hessian2: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(ErrorKind::Custom, msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(ErrorKind::Custom, msg.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Custom, format!("i/o error: {e}"))
    }
}
