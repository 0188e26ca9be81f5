//! The one place service errors map to gRPC status codes.

use crate::convert::ConvertError;

/// Largest gRPC message sent or accepted by default, in bytes (a sweep of
/// many images is submitted as one message). The coordinator's limit can be
/// lowered (`--max-message-mb`); clients and workers accept up to this.
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Errors of the coordinator's services.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or the spec is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's lease is stale: its work no longer counts.
    #[error("{0}")]
    Stale(String),
    /// The database or another dependency is unavailable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt state.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ServiceError::Unavailable(_))
    }
}

impl From<ConvertError> for ServiceError {
    fn from(e: ConvertError) -> ServiceError {
        ServiceError::Invalid(e.to_string())
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> tonic::Status {
        match e {
            ServiceError::Invalid(m) => tonic::Status::invalid_argument(m),
            ServiceError::NotFound(m) => tonic::Status::not_found(m),
            ServiceError::Stale(m) => tonic::Status::failed_precondition(m),
            ServiceError::Unavailable(m) => tonic::Status::unavailable(m),
            ServiceError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

/// Whether a status returned by the coordinator is worth retrying. `Cancelled`
/// is what a call gets when the coordinator's connection closes under it (the
/// process was killed mid-call); the coordinator never cancels a call itself.
pub fn status_is_retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Cancelled
    )
}

/// A status's message with the chain of errors beneath it (`transport error:
/// tcp connect error: Connection refused (os error 111)`), each said once.
pub fn cause(s: &tonic::Status) -> String {
    chain(s.message().to_string(), std::error::Error::source(s))
}

/// An error with the chain of errors beneath it, each said once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    chain(e.to_string(), e.source())
}

fn chain(mut out: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(e) = source {
        let m = e.to_string();
        if !out.contains(&m) {
            out = if out.is_empty() { m } else { format!("{out}: {m}") };
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_closed_mid_call_is_retried_and_refusals_are_not() {
        assert!(status_is_retryable(&tonic::Status::cancelled("operation was canceled: connection closed")));
        assert!(status_is_retryable(&tonic::Status::unavailable("connection refused")));
        assert!(!status_is_retryable(&tonic::Status::failed_precondition("stale lease")));
        assert!(!status_is_retryable(&tonic::Status::invalid_argument("bad")));
        assert!(!status_is_retryable(&tonic::Status::unauthenticated("no token")));
    }
}
