//! The coordinator: PostgreSQL's front for workers and admin clients. It
//! plans sweeps into shards at submit, hands out leases, renews them on
//! heartbeats, commits fenced outputs, and runs a reaper that requeues
//! expired leases with backoff.
//!
//! [`Coordinator`] is the service: the rules, with no transport in sight,
//! each group in its own file (`workers.rs`: register, lease, heartbeat,
//! commit, fail; `sweeps.rs`: submit, status, list, retry, cancel;
//! `upkeep.rs`: the reaper and the gauges; `commits.rs`: commits written in
//! groups). [`grpc`] serves it over gRPC, translating only; the dashboard
//! (`jagged-web`) reads it the same way.
//!
//! It keeps no state of its own besides caches: the immutable resolved forms of
//! running sweeps, fair-share passes, counter samples for throughput, and the
//! commits waiting to be written together. Kill it at any time and start
//! another; PostgreSQL holds the truth.
#![deny(missing_docs)]

mod commits;
pub mod grpc;
pub mod metrics;
mod service;
mod sweeps;
mod upkeep;
mod workers;

pub use grpc::{serve, Auth};
pub use jagged_domain::status::Submitted;
pub use jagged_proto::ServiceError;
pub use service::{Config, Coordinator};
pub use sweeps::{pair_keys, Submission, SweepDetail, RATE_WINDOW};
pub use workers::{Beat, FailReport, Registered, MAX_COMMITS_PER_CALL};
