//! The pure core of jagged: everything that can be decided without a clock, a
//! network, a database or an accelerator.
//!
//! - [`spec`]: the sweep spec users write in TOML, and its validation
//!   ([`spec::SweepSpec`], [`spec::ResolvedSweep`] once files are located).
//! - [`image`]: an RGB raster ([`image::Rgb8`]) and the deterministic resampler
//!   every worker uses, so the same spec gives bit-identical tensors everywhere.
//! - [`transform`]: the transform families (crop, embed, diagonal, circular,
//!   scale, rotate, shear, random pairs, sequences, layers, radius), one file
//!   each, with their parameter grids, neighbour
//!   relations and the code that writes a transformed input straight into a
//!   model's input tensor.
//! - [`metrics`]: softmax, top-k, the per-pair outcomes, and the metric table
//!   ([`metrics::METRICS`]) every report column is computed from.
//! - [`keys`]: object-store keys shared by workers and the coordinator.
//! - [`plan`]: the shard planner, a pure function of the resolved sweep.
//! - [`progress`]: throughput and time-to-finish from counter samples.
//! - [`rng`]: seeded random numbers for draws that must replay exactly.
//! - [`lease`]: shard states, legal transitions, and lease and retry maths on an
//!   explicit `now`.
//! - [`status`]: sweep states and the progress a status request reports.
//! - [`task`]: one leased shard as a worker runs it ([`task::ShardTask`]), and
//!   the failed items it reports.
//! - [`share`]: fair share across running sweeps by priority.
//!
//! ```
//! use jagged_domain::transform::Family;
//! let fam: Family = toml::from_str("kind = \"crop\"\nmax_shift = 2\nstep = 1").unwrap();
//! assert_eq!(fam.points().len(), 25);
//! assert_eq!(fam.pairs().len(), 2 * 5 * 4);
//! ```
#![deny(missing_docs)]

pub mod cost;
pub mod image;
pub mod keys;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod rng;
pub mod share;
pub mod spec;
pub mod status;
pub mod task;
pub mod transform;
