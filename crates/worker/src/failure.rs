//! Why a shard attempt failed, as the worker reports it.

/// Why a shard attempt failed.
pub(crate) struct Failure {
    /// What went wrong, naming the item or file.
    pub message: String,
    /// Whether another attempt (here or on another worker) may succeed.
    pub retryable: bool,
}

/// A failure another attempt may not have.
pub(crate) fn retryable(message: String) -> Failure {
    Failure { message, retryable: true }
}
