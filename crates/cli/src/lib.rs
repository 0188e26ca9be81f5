//! The pieces of the `jagged` binary that tests reuse: spec resolution, admin
//! client calls, model import, and a whole local deployment ([`cluster`]).

pub mod cluster;
pub mod models;
pub mod resolve;
pub mod sweep;
