//! The coordinator's background work: the reaper that requeues expired
//! leases, and the gauges read from PostgreSQL for `/metrics`.

use crate::metrics;
use crate::Coordinator;
use jagged_domain::status::SweepState;
use jagged_proto::ServiceError;
use jagged_store::now_ms;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Gauge refreshes between two readings of a running sweep's cost (which reads
/// all its outputs) and of its leased shards (whose count, while a long
/// transaction elsewhere holds back the xmin horizon, visits an index entry for
/// every shard leased since it began): at least this many, and at least
/// [`SLOW_SHARE`] times as long as the last such reading took.
const COST_TICKS: u32 = 5;

/// The slow gauge readings take at most one part in this many of the time.
const SLOW_SHARE: u32 = 50;

/// How far back before its last pass the reaper looks again (for deadlines
/// that other coordinators' clocks set a little behind this one's).
const REAP_OVERLAP_MS: i64 = 5_000;

/// How often the reaper looks at every expired lease, not only those whose
/// deadline passed since its last pass.
const REAP_ALL_MS: i64 = 60_000;

impl Coordinator {
    /// Whether PostgreSQL answers within 5 s (readiness).
    pub async fn ready(&self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(5), self.store.ping()).await, Ok(Ok(())))
    }

    /// Keeps the metrics read from PostgreSQL (sweeps, shards, workers, cost)
    /// current until `shutdown`: running sweeps every `every` (their cost and
    /// leased shards every [`COST_TICKS`] of those or more, as [`SLOW_SHARE`]
    /// says), finished ones once.
    pub async fn gauges(self, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        let mut finished = HashSet::new();
        let mut costs = HashMap::new();
        let mut slow_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let started = tokio::time::Instant::now();
            let slow = started + every / 2 >= slow_at;
            if let Err(e) = self.refresh_gauges(&mut finished, &mut costs, slow).await {
                tracing::debug!(error = %e.to_string(), "metrics refresh failed; will retry");
            }
            if slow {
                slow_at = started + (every * COST_TICKS).max(started.elapsed() * SLOW_SHARE);
            }
        }
    }

    async fn refresh_gauges(
        &self,
        finished: &mut HashSet<i64>,
        costs: &mut HashMap<i64, (i64, jagged_domain::cost::Totals)>,
        cost_due: bool,
    ) -> Result<(), ServiceError> {
        let rows = self.store.sweeps().await.map_err(|e| self.store_err(e))?;
        let mut by_state: HashMap<&'static str, i64> = HashMap::new();
        for s in &rows {
            *by_state.entry(s.state.as_str()).or_default() += 1;
            if finished.contains(&s.id) {
                continue;
            }
            // What a sweep spent reads all its outputs, and its leased shards
            // may take long to count: for running sweeps every few ticks, for a
            // finished one once more at the end.
            if cost_due || s.state != SweepState::Running || !costs.contains_key(&s.id) {
                let leased = self.store.leased_count(s.id).await.map_err(|e| self.store_err(e))?;
                let (spent, prices) = self.spent(s.id).await?;
                costs.insert(s.id, (leased, jagged_domain::cost::Totals::of(&spent, &prices)));
            }
            let (leased, cost) = &costs[&s.id];
            self.metrics.set_sweep(s, *leased, cost);
            if s.state != SweepState::Running {
                costs.remove(&s.id);
                finished.insert(s.id);
            }
        }
        for state in [SweepState::Running, SweepState::Done, SweepState::Failed, SweepState::Cancelled] {
            let n = by_state.get(state.as_str()).copied().unwrap_or(0);
            self.metrics.sweeps.get_or_create(&metrics::StateLabel { state: state.as_str().into() }).set(n);
        }
        let alive = self.store.workers_alive(now_ms() - 3 * self.config.policy.heartbeat_ms).await.map_err(|e| self.store_err(e))?;
        self.metrics.workers_live.set(alive);
        Ok(())
    }

    /// Runs the reaper until `shutdown` resolves. A pass looks at the leases
    /// whose deadline passed since the last complete pass began (less
    /// [`REAP_OVERLAP_MS`]), and every [`REAP_ALL_MS`] at all of them, for any a
    /// pass skipped while their row was locked.
    ///
    /// Nothing is reaped until this coordinator has reached PostgreSQL for a
    /// whole lease without a break (after it starts, and after an outage of
    /// the database): the workers' heartbeats could not renew their leases
    /// meanwhile, so a lease that ran out then says nothing about its worker.
    pub async fn reaper(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        const BATCH: i64 = 1000;
        let mut tick = tokio::time::interval(self.config.reap_interval);
        let (mut through, mut all_at): (Option<i64>, i64) = (None, 0);
        let mut reachable_since: Option<i64> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = now_ms();
            let since_ok = *reachable_since.get_or_insert(now);
            if now - since_ok < self.config.policy.lease_ms {
                if self.store.ping().await.is_err() {
                    reachable_since = None;
                }
                continue;
            }
            let since = through.filter(|_| now.saturating_sub(all_at) < REAP_ALL_MS && now >= all_at).map(|t| t - REAP_OVERLAP_MS);
            match self.store.reap_since(now, since, &self.config.policy, BATCH).await {
                Ok(n) => {
                    if since.is_none() {
                        all_at = now;
                    }
                    // A full batch may have left more behind: the next pass starts where this one did.
                    if (n as i64) < BATCH {
                        through = Some(now);
                    }
                    if n > 0 {
                        self.metrics.expirations.inc_by(n as u64);
                        tracing::warn!(shards = n, "requeued shards whose lease expired");
                    }
                }
                Err(e) => {
                    reachable_since = None;
                    tracing::warn!(error = %e, "reaper pass failed; will retry once PostgreSQL has answered for a lease");
                }
            }
        }
    }
}
