//! The gRPC protocol (`proto/jagged/v1/jagged.proto`), compiled with protox,
//! and everything that touches its messages:
//!
//! - [`v1`]: the generated messages, clients and servers.
//! - [`convert`]: conversions between messages and domain types, both ways
//!   (`From` domain -> wire, `TryFrom` wire -> domain, naming a malformed field).
//! - [`error`]: [`ServiceError`], the one place errors map to gRPC codes, and
//!   the message-size limit.
//! - [`auth`]: bearer tokens, checked in constant time and never logged.
//! - [`transport`]: endpoints for `http://` and `https://` (rustls) URLs.
//!
//! ```
//! use jagged_domain::transform::Family;
//! use jagged_proto::v1;
//! let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 2").unwrap();
//! let wire = v1::Family::from(f.clone());
//! assert_eq!(Family::try_from(wire).unwrap(), f);
//! ```
#![deny(missing_docs)]

/// Generated messages, clients and servers.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("jagged.v1");

    /// The protocol's encoded `FileDescriptorSet`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jagged_descriptor.bin"));
}

pub mod auth;
pub mod convert;
pub mod error;
pub mod transport;

pub use convert::ConvertError;
pub use error::{cause, error_chain, status_is_retryable, ServiceError, MAX_MESSAGE};
