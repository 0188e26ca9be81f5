//! A sweep's state and the progress a status request reports.

use serde::{Deserialize, Serialize};

/// The life of a sweep: `running` until every shard is done, failed or
/// cancelled; then `done` when every shard was committed, `failed` when any
/// failed after its attempts (`jagged sweep retry` reopens it), `cancelled`
/// when a user cancelled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepState {
    /// Shards are queued or leased.
    Running,
    /// Every shard was committed.
    Done,
    /// Every shard is out, and at least one failed after its attempts.
    Failed,
    /// Stopped by a user; committed results stay.
    Cancelled,
}

impl SweepState {
    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepState::Running => "running",
            SweepState::Done => "done",
            SweepState::Failed => "failed",
            SweepState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<SweepState> {
        Some(match s {
            "running" => SweepState::Running,
            "done" => SweepState::Done,
            "failed" => SweepState::Failed,
            "cancelled" => SweepState::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for SweepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed shard with its last error, named by model and family.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardError {
    /// Shard id.
    pub shard_id: i64,
    /// Model name.
    pub model: String,
    /// Family name.
    pub family: String,
    /// Last error.
    pub error: String,
}

/// Items that failed inside committed shards for one reason.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemFailures {
    /// What went wrong (the worker's words).
    pub reason: String,
    /// How many items failed so.
    pub count: i64,
    /// One of them, by name.
    pub example: String,
}

/// A sweep's progress, as `jagged sweep status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepStatus {
    /// Sweep id.
    pub sweep_id: i64,
    /// Name from the spec.
    pub name: String,
    /// State.
    pub state: SweepState,
    /// Share of the workers among running sweeps: 2^priority.
    pub priority: i32,
    /// Shards planned.
    pub total: u32,
    /// Shards waiting for a worker.
    pub queued: u32,
    /// Shards held by workers.
    pub leased: u32,
    /// Shards committed.
    pub done: u32,
    /// Shards failed after their attempts.
    pub failed: u32,
    /// Shards cancelled.
    pub cancelled: u32,
    /// Inferences run in committed shards.
    pub inferences_done: i64,
    /// Planned inferences that could not run: those of failed items and of
    /// failed shards.
    pub inferences_failed: i64,
    /// Inferences planned.
    pub inferences_total: i64,
    /// Items that failed inside committed shards.
    pub failed_items: i64,
    /// Those items grouped by reason, most first (the first ten reasons).
    pub item_failures: Vec<ItemFailures>,
    /// Submission time (RFC 3339).
    pub created_at: String,
    /// When it stopped running (RFC 3339), if it has.
    pub finished_at: Option<String>,
    /// The first failed shards with their errors.
    pub errors: Vec<ShardError>,
    /// Workers seen within three heartbeats.
    pub workers_alive: u32,
    /// Inferences per second over the last minute of status requests (0: not known yet).
    pub inferences_per_sec: f64,
    /// Seconds to finish at that rate (-1: not known).
    pub eta_secs: f64,
    /// Device-seconds (busy time of the execution provider) of committed attempts.
    pub busy_seconds: f64,
    /// Device-seconds of attempts that failed, were handed back or abandoned.
    pub busy_seconds_lost: f64,
    /// Estimated cost of all attempts from the prices per device kind (-1: a
    /// kind was used whose price is not known).
    pub estimated_cost: f64,
}

/// What a submit did: the coordinator's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submitted {
    /// The sweep's id (an existing one when the same sweep was submitted before).
    pub sweep_id: i64,
    /// Shards of the sweep, planned and adopted.
    pub shards: u32,
    /// The same sweep (spec, models and images) existed; nothing was added.
    pub existing: bool,
    /// Of `shards`, those adopted done from sweeps that computed the same
    /// (model, family) pairs (`--again` adopts none).
    pub reused_shards: u32,
    /// Their inferences.
    pub reused_inferences: u64,
    /// The sweeps they came from.
    pub reused_from: Vec<i64>,
    /// (Model, family) pairs planned to take most rows from an earlier grid of
    /// the same family with another extent, inferring only the points they need.
    pub widened_pairs: u32,
    /// The inferences those pairs plan.
    pub widened_inferences: u64,
    /// The inferences a full run of them would make.
    pub widened_full: u64,
    /// The sweeps of the earlier grids.
    pub widened_from: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_states_round_trip_their_names() {
        for s in [SweepState::Running, SweepState::Done, SweepState::Failed, SweepState::Cancelled] {
            assert_eq!(SweepState::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(SweepState::parse("paused"), None);
    }
}
