//! The admin side of jagged, as a library: turn a spec file into a resolved
//! sweep and submit it, then watch, list and cancel sweeps.
//!
//! - [`resolve`]: locate and check every file a spec names, read labels,
//!   upload models and images to the object store, and read each model's
//!   subsampling structure ([`resolve::resolve_with`], [`Overrides`]).
//! - [`admin`]: the coordinator's admin service ([`Admin`]): submit, status,
//!   list, cancel, and [`admin::wait`] for a sweep to finish.
//! - [`ClientConfig`]: where the coordinator is and how to reach it (token, CA).
//!
//! Errors are [`ClientError`]s whose messages name the file, field or sweep
//! they concern; a spec is checked completely before any connection is made.
//!
//! ```no_run
//! # async fn f() -> Result<(), jagged_client::ClientError> {
//! let config = jagged_client::ClientConfig::new("http://127.0.0.1:7070");
//! let store = jagged_artifacts::open_store("jagged-store").unwrap();
//! let submitted = jagged_client::submit(&config, "spec.toml".as_ref(), store.as_ref(), &Default::default()).await?;
//! let done = jagged_client::admin::wait(&config, submitted.sweep_id, |_| {}).await?;
//! println!("{}", jagged_client::admin::line(&done));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod admin;
pub mod resolve;

pub use admin::{submit, Admin, Submitted};
pub use resolve::Overrides;

use jagged_proto::auth::Token;
use std::path::PathBuf;

/// How an admin client reaches the coordinator.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Coordinator URL (`http://` or `https://`).
    pub coordinator: String,
    /// The admin token, when the coordinator requires one.
    pub token: Option<Token>,
    /// PEM file of the CA that signed the coordinator's certificate (`https://`).
    pub tls_ca: Option<PathBuf>,
}

impl ClientConfig {
    /// A coordinator at `url`, with no token and no TLS CA.
    pub fn new(url: impl Into<String>) -> ClientConfig {
        ClientConfig { coordinator: url.into(), token: None, tls_ca: None }
    }

    /// The same, presenting `token`.
    pub fn with_token(mut self, token: Option<Token>) -> ClientConfig {
        self.token = token;
        self
    }
}

/// What can go wrong on the admin side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The spec, a file it names, or a command-line override is not usable;
    /// the message names the file or field.
    #[error("{0}")]
    Spec(String),
    /// A file could not be read.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The object store failed.
    #[error("{what}: {cause}")]
    Store {
        /// What was being done.
        what: String,
        /// The cause.
        cause: jagged_artifacts::ArtifactError,
    },
    /// The client's own settings are unusable (a token that cannot be sent, TLS).
    #[error("{0}")]
    Config(String),
    /// The coordinator cannot be reached.
    #[error(
        "cannot reach the coordinator at {url} (start one with `jagged coordinator`, or set JAGGED_COORDINATOR): {}",
        jagged_proto::error_chain(cause)
    )]
    Connect {
        /// Its URL.
        url: String,
        /// The cause.
        cause: tonic::transport::Error,
    },
    /// The peer at the coordinator's URL is not a coordinator.
    #[error(
        "{url} is not a jagged coordinator ({cause}): is it the dashboard's port, PostgreSQL's, or another service's? \
         A coordinator's gRPC address is the one `jagged coordinator --listen` names (127.0.0.1:7070 by default)"
    )]
    NotCoordinator {
        /// The URL.
        url: String,
        /// What the peer answered.
        cause: String,
    },
    /// The coordinator answered with an error (its message).
    #[error("{}", jagged_proto::cause(.0))]
    Refused(tonic::Status),
    /// The coordinator's answer does not describe a valid value.
    #[error(transparent)]
    Malformed(#[from] jagged_proto::ConvertError),
    /// The coordinator stayed unreachable while waiting on a sweep.
    #[error("coordinator unreachable for a minute: {0}")]
    Unreachable(Box<ClientError>),
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> ClientError {
        ClientError::Refused(s)
    }
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io_err(what: String) -> impl FnOnce(std::io::Error) -> ClientError {
    move |cause| ClientError::Io { what, cause }
}

/// Wraps an object-store error with what was being done.
pub(crate) fn store_err(what: String) -> impl FnOnce(jagged_artifacts::ArtifactError) -> ClientError {
    move |cause| ClientError::Store { what, cause }
}
