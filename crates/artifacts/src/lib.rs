//! Object keys and result files.
//!
//! Layout inside the object store (a local folder or a bucket):
//! - `blobs/sha256/<hex>`: models and images, content-addressed, uploaded at submit.
//! - `sweeps/<sweep>/parts/shard-<shard>-attempt-<a>-epoch-<e>.parquet`: one result
//!   part per shard attempt. Keys are attempt-specific, so a late or zombie writer
//!   can never overwrite the file that was committed; only the key recorded in
//!   PostgreSQL counts.
//!
//! The part schema is [`schema`], documented column by column in `docs/results.md`.
//!
//! - `store.rs`: opening a store from its URL, whole-object reads and writes,
//!   content-addressed blobs;
//! - `row.rs`: the result row ([`ResultRow`]) and the part [`schema`];
//! - `part.rs`: rows to a Parquet part and back ([`encode`], [`decode`]);
//! - `summary.rs`: the columns a report folds, read alone ([`decode_summary`]).
#![deny(missing_docs)]

mod part;
mod row;
mod store;
mod summary;

pub use jagged_domain::keys::part_key;
pub use jagged_domain::metrics::equivariance::LayerError;
pub use part::{decode, encode};
pub use row::{schema, ResultRow};
pub use store::{
    blob_key, get, is_local, local_folder, open_store, open_store_with, put, put_blob, put_local, sha256_hex, MULTIPART_BYTES, S3_RETRY_SECS,
};
pub use summary::{decode_summary, SummaryColumns, NO_LABEL};

/// Errors of storage and result files.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A result file could not be written or read.
    #[error("result file: {0}")]
    Parquet(String),
    /// A store URL is not understood.
    #[error("store url `{0}`: {1}")]
    Url(String, String),
}

type Result<T> = std::result::Result<T, ArtifactError>;

#[cfg(test)]
mod tests;
