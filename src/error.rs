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

impl Error {
    /// The gRPC status code of this error: the one table from errors to codes (the
    /// service layer builds its statuses from it; import rejections name it).
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Error::Invalid(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Corrupt(_) => Code::Internal,
        }
    }

    /// The canonical name of [`Error::code`] ("INVALID_ARGUMENT", …), as the gRPC spec
    /// spells it.
    pub fn code_name(&self) -> &'static str {
        use tonic::Code;
        match self.code() {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }
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

/// The message a caught panic carried (`panic!` with a literal or a formatted string),
/// or "panic".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// Every error has one code, and its name is the canonical spelling of that code.
    #[test]
    fn each_error_names_its_grpc_code() {
        let all = [
            Error::Invalid(crate::domain::DomainError::invalid("f", "x")),
            Error::NotFound("x".into()),
            Error::AlreadyExists("x".into()),
            Error::FailedPrecondition("x".into()),
            Error::PermissionDenied("x".into()),
            Error::ResourceExhausted("x".into()),
            Error::Unavailable("x".into()),
            Error::Corrupt("x".into()),
        ];
        let names: Vec<&str> = all.iter().map(Error::code_name).collect();
        assert_eq!(
            names,
            [
                "INVALID_ARGUMENT",
                "NOT_FOUND",
                "ALREADY_EXISTS",
                "FAILED_PRECONDITION",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "UNAVAILABLE",
                "INTERNAL"
            ]
        );
        for e in all {
            let code = e.code();
            assert_eq!(crate::server::service::status(e).code(), code);
        }
    }
}
