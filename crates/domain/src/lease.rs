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
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy { lease_ms: 30_000, heartbeat_ms: 5_000, backoff_base_ms: 1_000, backoff_cap_ms: 60_000 }
    }
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

    /// Where a shard goes when its `attempt`-th attempt failed.
    pub fn after_failure(&self, attempt: u32, max_attempts: u32) -> ShardState {
        if attempt >= max_attempts {
            ShardState::Failed
        } else {
            ShardState::Queued
        }
    }
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
