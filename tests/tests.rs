//! Integration tests, one binary. Each area is a module:

// Scheduling rules at the SQL level against a private PostgreSQL.
mod store;
// The store beyond the queue: formats, migrations, device time, counters, upkeep.
mod store_upkeep;
// Results reused across sweeps by content key.
mod reuse;
// The whole system: coordinator and worker processes over real gRPC.
mod e2e;
// The real model: EfficientNet-Lite0 imported from its PyTorch weights.
mod model;
// The worker's compute step: threads, batches, widened grids, rendering in the graph.
mod compute;
// Bad input refused with clear messages.
mod bad_input;
// An independent Python computation agrees with the system row by row.
mod crosscheck;
// Fair share across sweeps, model affinity and commits sent together.
mod scheduling;
// Damage to running sweeps: kills, restarts, freezes; results stay exact.
mod faults;
// A failure storm: losses the whole fleet suffers are not a poison shard's.
mod storm;
// The S3 object store on a real S3 server.
mod s3;
// Authentication: worker and admin tokens.
mod security;
// The metric table is documented and recomputed outside the code.
mod docs;
// Failures that say what happened and can be retried without losing work.
mod failures;
// Setting up: missing tools and PostgreSQL binaries are named with their fix.
mod setup;
// Workers that stop, are preempted or vanish: lost leases are not failures.
mod preemption;
// Robust radius by adaptive sweeps: known radii, early stop, a killed worker.
mod radius;
// The Slurm scripts on a real single-node Slurm.
mod slurm;
// Several coordinators against one PostgreSQL.
mod ha;
// The Kubernetes manifests: rendered, validated, and their command lines run.
mod kubernetes;
// The container image, assembled offline and run with podman.
mod container;
// Watching sweeps: Prometheus, alerts, the dashboard in a browser, health and
// reflection, cost, JSON logs.
mod observe;
// Inputs identical to the PyTorch world's: Pillow's resize and libjpeg-turbo's
// decoding, pixel for pixel, and the new geometries.
mod compat;
// PyTorch models exported by scripts/export-torch.py, run in a sweep.
mod export;
// Aliasing: BlurPool written into models.
mod aliasing;
// Result parts as DuckDB reads them.
mod parts;
// Helpers the areas share: a child's output read as it comes.
mod util;
