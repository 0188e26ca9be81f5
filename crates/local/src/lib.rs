//! jagged on one machine, for the demo, the tests and the benchmarks.
//!
//! - [`postgres`]: a private PostgreSQL cluster ([`LocalPostgres`]) in a
//!   temporary folder on a free loopback port, thrown away on drop.
//! - [`process`]: child processes ([`Proc`]) with their output in a log, and
//!   [`stop_child`]: SIGTERM (or another signal), then SIGKILL after a grace.
//! - [`cluster`]: a whole deployment ([`LocalCluster`]): PostgreSQL, a local
//!   object store, a coordinator and workers as child processes of the `jagged`
//!   binary.
//!
//! Nothing here speaks SQL or gRPC: it starts the programs that do.
#![deny(missing_docs)]

pub mod cluster;
pub mod postgres;
pub mod process;

pub use cluster::{ClusterOptions, LocalCluster};
pub use postgres::{LocalPostgres, PgSettings};
pub use process::{stop_child, Proc};

/// What can go wrong starting or stopping local processes.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The private PostgreSQL cluster could not be set up or started.
    #[error("private PostgreSQL: {0}")]
    Postgres(String),
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The deployment did not come up.
    #[error("{0}")]
    Cluster(String),
}
