//! The crate's one error type. The service layer maps it to `tonic::Status` in one place
//! (`service::status`).

use crate::domain::DomainError;

/// Everything that can go wrong below the service layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input broke a rule; names the field.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// A referenced record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key is taken by a different record.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is valid but the system is not in a state to do it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's token does not cover the record (its region scope).
    #[error("{0}")]
    PermissionDenied(String),
    /// A configured limit was exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The store could not be read or written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded: a bug or corruption.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => Error::Corrupt(e.to_string()),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid(DomainError::invalid(field, reason))
    }
}
