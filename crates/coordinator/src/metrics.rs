//! The coordinator's Prometheus metrics (`docs/metrics.md`).
//!
//! Counters and histograms are this process's own (several coordinators each
//! count what they handled: sum them). Gauges of sweeps, shards, workers and
//! cost are read from PostgreSQL every few seconds, so every coordinator
//! exports the same values: take `max` over instances.

use jagged_domain::cost::Totals;
use jagged_domain::status::SweepState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// A sweep.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepLabel {
    /// Sweep id.
    pub sweep: String,
}

/// A sweep and a state (of its shards, or of inferences).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepStateLabel {
    /// Sweep id.
    pub sweep: String,
    /// State.
    pub state: String,
}

/// A state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// State.
    pub state: String,
}

/// An outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// Outcome.
    pub outcome: String,
}

/// A sweep's info: its id, name and state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepInfoLabel {
    /// Sweep id.
    pub sweep: String,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: String,
}

/// A sweep and how its attempts ended (`done`, `lost`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweepOutcomeLabel {
    /// Sweep id.
    pub sweep: String,
    /// `done` or `lost`.
    pub outcome: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// Every metric the coordinator exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry they are in.
    pub registry: std::sync::Arc<Registry>,
    /// Leases granted, by sweep.
    pub leases: Family<SweepLabel, Counter>,
    /// Commits by outcome: `accepted`, `stale`, `refused` (any other error).
    pub commits: Family<OutcomeLabel, Counter>,
    /// Shards whose lease expired (the reaper released them).
    pub expirations: Counter,
    /// Seconds a lease call spent claiming.
    pub claim_seconds: Histogram,
    /// Seconds a commit took (grouped write included).
    pub commit_seconds: Histogram,
    /// Seconds from queued (ready) to leased.
    pub queue_wait_seconds: Histogram,
    /// Wall seconds of committed shards on their workers.
    pub shard_seconds: Histogram,
    /// Shards by sweep and state (from PostgreSQL).
    pub shards: Family<SweepStateLabel, Gauge>,
    /// Inferences by sweep: `done`, `failed`, `planned` (from PostgreSQL).
    pub inferences: Family<SweepStateLabel, Gauge>,
    /// 1 per sweep, with its name and state as labels.
    pub sweep_info: Family<SweepInfoLabel, Gauge>,
    /// Sweeps by state.
    pub sweeps: Family<StateLabel, Gauge>,
    /// Workers seen within three heartbeats.
    pub workers_live: Gauge,
    /// Device-seconds by sweep and outcome (`done`, `lost`).
    pub device_seconds: Family<SweepOutcomeLabel, FGauge>,
    /// Estimated cost by sweep (absent while a used device kind has no price).
    pub cost: Family<SweepLabel, FGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let latency = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let long = || Histogram::new(exponential_buckets(0.05, 2.0, 16));
        let m = Metrics {
            registry: Default::default(),
            leases: Default::default(),
            commits: Default::default(),
            expirations: Default::default(),
            claim_seconds: latency(),
            commit_seconds: latency(),
            queue_wait_seconds: long(),
            shard_seconds: long(),
            shards: Default::default(),
            inferences: Default::default(),
            sweep_info: Default::default(),
            sweeps: Default::default(),
            workers_live: Default::default(),
            device_seconds: Default::default(),
            cost: Default::default(),
        };
        r.register("jagged_leases_granted", "Shard leases granted, by sweep", m.leases.clone());
        r.register("jagged_commits", "Shard commits by outcome (accepted, stale: refused as a lost lease, refused: other errors)", m.commits.clone());
        r.register("jagged_lease_expirations", "Leases that expired without a word from their worker", m.expirations.clone());
        r.register_with_unit("jagged_claim_duration", "Time a lease call spent claiming shards", Unit::Seconds, m.claim_seconds.clone());
        r.register_with_unit("jagged_commit_duration", "Time a commit took, its grouped write included", Unit::Seconds, m.commit_seconds.clone());
        r.register_with_unit("jagged_queue_wait", "Time from a shard being ready to being leased", Unit::Seconds, m.queue_wait_seconds.clone());
        r.register_with_unit("jagged_shard_duration", "Wall time of committed shards on their workers", Unit::Seconds, m.shard_seconds.clone());
        r.register("jagged_sweep_shards", "Shards by sweep and state (queued, leased, done, failed, cancelled)", m.shards.clone());
        r.register("jagged_sweep_inferences", "Inferences by sweep: done, failed, planned", m.inferences.clone());
        r.register("jagged_sweep_info", "1 for each sweep, with its name and state", m.sweep_info.clone());
        r.register("jagged_sweeps", "Sweeps by state", m.sweeps.clone());
        r.register("jagged_workers_live", "Workers seen within three heartbeat intervals", m.workers_live.clone());
        r.register_with_unit(
            "jagged_sweep_device",
            "Busy time of execution providers spent on a sweep's attempts, by outcome (done: committed; lost: failed, handed back, abandoned)",
            Unit::Seconds,
            m.device_seconds.clone(),
        );
        r.register("jagged_sweep_estimated_cost", "Estimated cost of a sweep's attempts from the prices per device-hour", m.cost.clone());
        Metrics { registry: std::sync::Arc::new(r), ..m }
    }

    /// Sets the gauges of one sweep.
    pub fn set_sweep(&self, s: &jagged_store::SweepRow, leased: i64, cost: &Totals) {
        let id = s.id.to_string();
        let queued = (s.total - s.done - s.failed - s.cancelled) as i64 - leased;
        for (state, n) in
            [("queued", queued.max(0)), ("leased", leased), ("done", s.done as i64), ("failed", s.failed as i64), ("cancelled", s.cancelled as i64)]
        {
            self.shards.get_or_create(&SweepStateLabel { sweep: id.clone(), state: state.into() }).set(n);
        }
        for (state, n) in [("done", s.inferences_done), ("failed", s.inferences_failed), ("planned", s.inferences_total)] {
            self.inferences.get_or_create(&SweepStateLabel { sweep: id.clone(), state: state.into() }).set(n);
        }
        for state in [SweepState::Running, SweepState::Done, SweepState::Failed, SweepState::Cancelled] {
            let label = SweepInfoLabel { sweep: id.clone(), name: s.name.clone(), state: state.as_str().into() };
            if state == s.state {
                self.sweep_info.get_or_create(&label).set(1);
            } else {
                self.sweep_info.remove(&label);
            }
        }
        self.device_seconds.get_or_create(&SweepOutcomeLabel { sweep: id.clone(), outcome: "done".into() }).set(cost.busy_done);
        self.device_seconds.get_or_create(&SweepOutcomeLabel { sweep: id.clone(), outcome: "lost".into() }).set(cost.busy_lost);
        match cost.cost {
            Some(c) => {
                self.cost.get_or_create(&SweepLabel { sweep: id }).set(c);
            }
            None => {
                self.cost.remove(&SweepLabel { sweep: id });
            }
        }
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
