//! Shard states, their legal transitions, and lease and retry maths on an
//! explicit clock (milliseconds since the Unix epoch), so the rules are tested
//! without sleeping.

use serde::{Deserialize, Serialize};

/// The life of a shard: `queued -> leased -> done | failed`, `leased -> queued`
/// on a retryable failure or lease expiry, and `queued | leased -> cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker until its lease deadline.
    Leased,
    /// Committed; its output counts.
    Done,
    /// Gave up after its attempts; its last error is kept.
    Failed,
    /// Its sweep was cancelled.
    Cancelled,
}

impl ShardState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Queued => "queued",
            ShardState::Leased => "leased",
            ShardState::Done => "done",
            ShardState::Failed => "failed",
            ShardState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ShardState> {
        Some(match s {
            "queued" => ShardState::Queued,
            "leased" => ShardState::Leased,
            "done" => ShardState::Done,
            "failed" => ShardState::Failed,
            "cancelled" => ShardState::Cancelled,
            _ => return None,
        })
    }

    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, ShardState::Done | ShardState::Failed | ShardState::Cancelled)
    }

    /// Whether `self -> to` is a legal transition.
    pub fn can_become(self, to: ShardState) -> bool {
        use ShardState::*;
        matches!((self, to), (Queued, Leased) | (Leased, Done) | (Leased, Failed) | (Leased, Queued) | (Queued, Cancelled) | (Leased, Cancelled))
    }
}

/// Lease and retry timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeasePolicy {
    /// How long a lease lasts without a heartbeat.
    pub lease_ms: i64,
    /// How often workers should heartbeat (well under `lease_ms`).
    pub heartbeat_ms: i64,
    /// First retry delay.
    pub backoff_base_ms: i64,
    /// Largest retry delay.
    pub backoff_cap_ms: i64,
    /// Lost leases (a worker vanished, or stopped and handed its shard back) a
    /// shard may have before it fails: preemption is not failure, so this
    /// budget is apart from the sweep's `max_attempts` and larger.
    pub max_lost: u32,
    /// Different workers that, one after another, vanished holding the same
    /// shard before it may fail as one that kills its workers (out of memory,
    /// say): the least evidence, weighed against the fleet's (see [`Fleet`]).
    pub max_lost_workers: u32,
}

/// The chance, below which a run of vanished workers is not put down to the
/// fleet's own losses: the shard fails as one that kills its workers only when
/// the rest of the fleet, vanishing at its own rate, would explain the run less
/// often than once in this many shards.
pub const BY_CHANCE: f64 = 1e-4;

/// What the rest of the fleet did while a shard lost its leases on a run of
/// workers: the evidence that tells a shard that kills its workers from a fleet
/// under fire (random kills, a node failure, a preemption wave), where other
/// shards' attempts are lost too. Measured from the start of the run, over the
/// attempts of other shards by workers outside the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fleet {
    /// Attempts of other shards that ended (committed, failed, handed back or lost).
    pub attempts: u32,
    /// Of those, the ones lost because their worker vanished.
    pub lost: u32,
    /// Other workers that vanished.
    pub vanished: u32,
    /// Seconds the window spans.
    pub window_seconds: f64,
}

impl Fleet {
    /// The chance that an attempt is lost, as the other shards' attempts were
    /// (0 when none ended: no evidence of a storm).
    pub fn chance(&self) -> f64 {
        if self.attempts == 0 {
            return 0.0;
        }
        self.lost as f64 / self.attempts as f64
    }

    /// The chance that `run` attempts in a row were lost by the fleet's rate alone.
    pub fn chance_of_run(&self, run: usize) -> f64 {
        self.chance().powi(run as i32)
    }
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy { lease_ms: 30_000, heartbeat_ms: 5_000, backoff_base_ms: 1_000, backoff_cap_ms: 60_000, max_lost: 20, max_lost_workers: 3 }
    }
}

/// How a shard's attempt ended without a commit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ended {
    /// The worker reported an error.
    Failed {
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// The lease expired: the worker (this id) vanished without a word.
    Expired {
        /// The worker that held it.
        worker: i64,
        /// What the rest of the fleet did meanwhile, when the run of workers
        /// is long enough to ask ([`LeasePolicy::suspects`]); none: nothing
        /// vanished elsewhere.
        fleet: Option<Fleet>,
    },
    /// The worker was told to stop (preemption, a scale-down) and handed the
    /// shard back.
    HandedBack,
}

/// A shard's retry counters: reported failures, lost leases, and the workers
/// that lost it in a row (since its last reported failure or hand-back).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Attempts that ended with a reported error.
    pub failures: u32,
    /// Leases lost: expired, or handed back.
    pub lost: u32,
    /// Workers that vanished holding it, one after another, oldest first.
    pub lost_by: Vec<i64>,
}

/// Where a shard goes after an attempt ended without a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Next {
    /// Queued (again) or failed.
    pub state: ShardState,
    /// The counters to store.
    pub counters: Counters,
    /// Delay before it may be leased again.
    pub delay_ms: i64,
    /// What to record as its last error.
    pub error: String,
}

impl LeasePolicy {
    /// Deadline of a lease taken or renewed at `now`.
    pub fn deadline(&self, now_ms: i64) -> i64 {
        now_ms + self.lease_ms
    }

    /// Whether a lease with this deadline has expired at `now`.
    pub fn expired(&self, deadline_ms: i64, now_ms: i64) -> bool {
        now_ms > deadline_ms
    }

    /// Delay before retrying after the `attempt`-th attempt failed (attempts count
    /// from 1): base, 2 x base, 4 x base, ... up to the cap.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let shift = attempt.saturating_sub(1).min(30);
        (self.backoff_base_ms.saturating_mul(1i64 << shift)).min(self.backoff_cap_ms)
    }

    /// Where a shard goes after an attempt `ended` without a commit, given its
    /// counters so far, the sweep's `max_attempts`, and what the worker said
    /// (`error`, for a reported failure).
    pub fn after(&self, before: &Counters, ended: Ended, max_attempts: u32, error: &str) -> Next {
        let mut c = before.clone();
        match ended {
            Ended::Failed { retryable } => {
                c.failures += 1;
                c.lost_by.clear();
                let state = if retryable { self.after_failure(c.failures, max_attempts) } else { ShardState::Failed };
                Next { state, delay_ms: self.backoff_ms(c.failures), error: error.to_string(), counters: c }
            }
            Ended::Expired { worker, fleet } => {
                c.lost += 1;
                c.lost_by.push(worker);
                let run = distinct(&c.lost_by);
                let fleet = fleet.unwrap_or_default();
                let odds = fleet.chance_of_run(run);
                let ids = || c.lost_by.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ");
                let (state, error) = if run as u32 >= self.max_lost_workers && odds < BY_CHANCE {
                    let e = format!(
                        "lease lost on {run} different workers in a row (workers {}): each vanished while running this shard, which may be killing them (out of memory?); {}; their logs say more",
                        ids(),
                        fleet_said(&fleet)
                    );
                    (ShardState::Failed, e)
                } else if run as u32 >= self.max_lost_workers {
                    let e = format!(
                        "lease expired: worker {worker} vanished or stalled (lost lease {} of {}); {run} workers in a row (workers {}), but {}: not put down to this shard",
                        c.lost,
                        self.max_lost,
                        ids(),
                        fleet_said(&fleet)
                    );
                    self.after_loss(&c, e)
                } else {
                    self.after_loss(&c, format!("lease expired: worker {worker} vanished or stalled (lost lease {} of {})", c.lost, self.max_lost))
                };
                Next { state, delay_ms: self.backoff_ms(c.lost), error, counters: c }
            }
            Ended::HandedBack => {
                c.lost += 1;
                c.lost_by.clear();
                let (state, error) = self.after_loss(&c, format!("handed back by a stopping worker (lost lease {} of {})", c.lost, self.max_lost));
                Next { state, delay_ms: 0, error, counters: c }
            }
        }
    }

    /// Whether the workers that lost a shard in a row, with `worker` who just
    /// lost it, are enough to weigh against the fleet: the store gathers the
    /// [`Fleet`] evidence only then.
    pub fn suspects(&self, before: &Counters, worker: i64) -> bool {
        let mut run = before.lost_by.clone();
        run.push(worker);
        distinct(&run) as u32 >= self.max_lost_workers
    }

    /// Queued with `error`, or failed once the lost-lease budget is spent.
    fn after_loss(&self, c: &Counters, error: String) -> (ShardState, String) {
        if c.lost >= self.max_lost {
            (ShardState::Failed, format!("lease lost {} times (workers vanished or were stopped); last: {error}", c.lost))
        } else {
            (ShardState::Queued, error)
        }
    }

    /// Where a shard goes when its `attempt`-th attempt failed.
    pub fn after_failure(&self, attempt: u32, max_attempts: u32) -> ShardState {
        if attempt >= max_attempts {
            ShardState::Failed
        } else {
            ShardState::Queued
        }
    }
}

/// How many different workers are in `ids`.
fn distinct(ids: &[i64]) -> usize {
    let mut d = ids.to_vec();
    d.sort_unstable();
    d.dedup();
    d.len()
}

/// What the fleet did, in words.
fn fleet_said(f: &Fleet) -> String {
    if f.lost == 0 {
        return format!("the rest of the fleet lost none of its {} attempts in those {:.0} s", f.attempts, f.window_seconds);
    }
    format!(
        "the rest of the fleet lost {} of its {} attempts in those {:.0} s ({:.0}%; {} other worker(s) vanished)",
        f.lost,
        f.attempts,
        f.window_seconds,
        100.0 * f.chance(),
        f.vanished
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expires_strictly_after_its_deadline() {
        let p = LeasePolicy { lease_ms: 1000, ..Default::default() };
        let d = p.deadline(5_000);
        assert_eq!(d, 6_000);
        assert!(!p.expired(d, 6_000));
        assert!(p.expired(d, 6_001));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = LeasePolicy { backoff_base_ms: 100, backoff_cap_ms: 1_000, ..Default::default() };
        assert_eq!((1..=6).map(|a| p.backoff_ms(a)).collect::<Vec<_>>(), vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ms(200), 1000);
    }

    #[test]
    fn lost_leases_have_their_own_budget_and_a_run_of_vanished_workers_fails_the_shard() {
        let p = LeasePolicy { max_lost: 4, max_lost_workers: 3, backoff_base_ms: 100, backoff_cap_ms: 1_000, ..Default::default() };
        let start = Counters::default();
        // Preempted (handed back) more times than max_attempts: still queued, at once.
        let mut c = start.clone();
        for n in 1..=3 {
            let next = p.after(&c, Ended::HandedBack, 1, "");
            assert_eq!((next.state, next.delay_ms, next.counters.lost, next.counters.failures), (ShardState::Queued, 0, n, 0));
            assert_eq!(next.error, format!("handed back by a stopping worker (lost lease {n} of 4)"));
            c = next.counters;
        }
        // The budget spent: failed, saying so.
        let next = p.after(&c, Ended::HandedBack, 1, "");
        assert_eq!(next.state, ShardState::Failed);
        assert!(next.error.starts_with("lease lost 4 times (workers vanished or were stopped); last: handed back"), "{}", next.error);

        // The same worker vanishing twice, then another: a run of two workers.
        let a = p.after(&start, Ended::Expired { worker: 7, fleet: None }, 3, "");
        assert_eq!((a.state, a.delay_ms, a.counters.lost_by.clone()), (ShardState::Queued, 100, vec![7]));
        assert_eq!(a.error, "lease expired: worker 7 vanished or stalled (lost lease 1 of 4)");
        let b = p.after(&a.counters, Ended::Expired { worker: 7, fleet: None }, 3, "");
        let c2 = p.after(&b.counters, Ended::Expired { worker: 9, fleet: None }, 3, "");
        assert_eq!((c2.state, c2.delay_ms, c2.counters.lost_by.clone()), (ShardState::Queued, 400, vec![7, 7, 9]));
        // A reported failure breaks the run, and counts against max_attempts only.
        let f = p.after(&c2.counters, Ended::Failed { retryable: true }, 3, "boom");
        assert_eq!((f.state, f.error.as_str(), f.counters.clone()), (ShardState::Queued, "boom", Counters { failures: 1, lost: 3, lost_by: vec![] }));
        // Three different workers in a row: the shard is killing them.
        let mut c = Counters::default();
        let mut last = None;
        for w in [4, 5, 6] {
            let n = p.after(&c, Ended::Expired { worker: w, fleet: None }, 3, "");
            c = n.counters.clone();
            last = Some(n);
        }
        let last = last.unwrap();
        assert_eq!(last.state, ShardState::Failed);
        assert!(last.error.starts_with("lease lost on 3 different workers in a row (workers 4, 5, 6)"), "{}", last.error);
        // Failures: max_attempts, or at once when not retryable.
        let c = Counters { failures: 2, ..Default::default() };
        assert_eq!(p.after(&c, Ended::Failed { retryable: true }, 3, "x").state, ShardState::Failed);
        assert_eq!(p.after(&start, Ended::Failed { retryable: false }, 3, "x").state, ShardState::Failed);
    }

    #[test]
    fn a_run_of_vanished_workers_is_weighed_against_the_fleets_own_losses() {
        let p = LeasePolicy { max_lost: 20, max_lost_workers: 3, ..Default::default() };
        // The rest of the fleet lost 8 of its 40 attempts: one in five. Three in
        // a row by chance: 0.2^3 = 0.008; five: 3.2e-4; six: 6.4e-5, under 1e-4.
        let storm = Fleet { attempts: 40, lost: 8, vanished: 6, window_seconds: 30.0 };
        assert_eq!(storm.chance(), 0.2);
        assert!((storm.chance_of_run(3) - 0.008).abs() < 1e-12);
        let lose = |c: &Counters, w: i64, fleet: Option<Fleet>| p.after(c, Ended::Expired { worker: w, fleet }, 3, "");
        let mut c = Counters::default();
        for w in 1..=5 {
            assert_eq!(p.suspects(&c, w), w >= 3);
            let n = lose(&c, w, Some(storm));
            assert_eq!(n.state, ShardState::Queued, "{w} workers: 0.2^{w} is not below 1e-4");
            c = n.counters;
        }
        let n = lose(&c, 5, Some(storm));
        assert!(
            n.error.contains("5 workers in a row (workers 1, 2, 3, 4, 5, 5), but the rest of the fleet lost 8 of its 40 attempts in those 30 s (20%; 6 other worker(s) vanished)"),
            "{}",
            n.error
        );
        assert!(n.error.ends_with("not put down to this shard"), "{}", n.error);
        let n = lose(&n.counters, 6, Some(storm));
        assert_eq!(n.state, ShardState::Failed, "{}", n.error);
        assert!(n.error.starts_with("lease lost on 6 different workers in a row"), "{}", n.error);
        // A quiet fleet (or none at all): three are enough, and the message says so.
        for quiet in [Fleet { attempts: 50, lost: 0, vanished: 0, window_seconds: 60.0 }, Fleet::default()] {
            assert_eq!(quiet.chance(), 0.0);
            let mut c = Counters::default();
            let mut last = None;
            for w in [4, 5, 6] {
                let n = lose(&c, w, Some(quiet));
                c = n.counters.clone();
                last = Some(n);
            }
            let last = last.unwrap();
            assert_eq!(last.state, ShardState::Failed);
            assert!(last.error.contains(&format!("the rest of the fleet lost none of its {} attempts", quiet.attempts)), "{}", last.error);
        }
    }

    #[test]
    fn poison_after_max_attempts() {
        let p = LeasePolicy::default();
        assert_eq!(p.after_failure(1, 3), ShardState::Queued);
        assert_eq!(p.after_failure(3, 3), ShardState::Failed);
    }

    #[test]
    fn only_legal_transitions() {
        use ShardState::*;
        assert!(Queued.can_become(Leased));
        assert!(!Done.can_become(Queued));
        assert!(!Failed.can_become(Leased));
        assert!(!Queued.can_become(Done));
        for s in [Queued, Leased, Done, Failed, Cancelled] {
            assert_eq!(ShardState::parse(s.as_str()), Some(s));
        }
    }
}
