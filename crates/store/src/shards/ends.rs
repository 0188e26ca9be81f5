//! How a lease ends: renewed by heartbeats, committed (fenced by its epoch and
//! its attempt's own part key), failed (retried with backoff or failed for
//! good), handed back, or expired and requeued by the reaper.

use super::Held;
use crate::outputs::Commit;
use crate::{ts, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use jagged_domain::lease::{Counters, Ended, LeasePolicy, ShardState};

/// A row of complete.sql: a shard done, or what to add to a sweep's tally.
#[derive(sqlx::FromRow)]
struct PgCompleted {
    kind: String,
    id: i64,
    shards: i32,
    inferences: i64,
    skipped: i64,
    failed: i64,
    added_shards: i32,
    added_inferences: i64,
}

/// A locked leased shard, about to be released.
#[derive(sqlx::FromRow)]
struct PgLocked {
    id: i64,
    sweep_id: i64,
    model_idx: i32,
    lease_epoch: i64,
    max_attempts: i32,
    inferences: i64,
    worker_id: Option<i64>,
    failures: i32,
    lost: i32,
    lost_by: Vec<i64>,
    busy_seconds: f64,
    leased_at: Option<DateTime<Utc>>,
}

impl PgLocked {
    fn counters(&self) -> Counters {
        Counters { failures: self.failures.max(0) as u32, lost: self.lost.max(0) as u32, lost_by: self.lost_by.clone() }
    }
}

#[derive(sqlx::FromRow)]
struct PgLease {
    sweep_id: i64,
    attempt: i32,
    lease_epoch: i64,
    state: String,
}

impl Store {
    /// Renews the leases `worker` holds; returns the ids of held shards it lost.
    pub async fn heartbeat(&self, worker: i64, held: &[Held], now_ms: i64, policy: &LeasePolicy) -> Result<Vec<i64>> {
        self.touch_worker(worker, now_ms).await?;
        if held.is_empty() {
            return Ok(vec![]);
        }
        let kept: Vec<i64> = sqlx::query_scalar(include_str!("../../queries/shards/heartbeat.sql"))
            .bind(worker)
            .bind(held.iter().map(|h| h.shard).collect::<Vec<_>>())
            .bind(held.iter().map(|h| h.epoch).collect::<Vec<_>>())
            .bind(ts(policy.deadline(now_ms)))
            .bind(held.iter().map(|h| h.busy).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
        Ok(held.iter().map(|h| h.shard).filter(|id| !kept.contains(id)).collect())
    }

    /// Commits one shard's output under its lease epoch, with its failed items,
    /// and counts it into the sweep, atomically ([`Store::complete_many`] of one).
    pub async fn complete(&self, commit: Commit, now_ms: i64) -> Result<()> {
        self.complete_many(std::slice::from_ref(&commit), now_ms).await?.remove(0)
    }

    /// Commits many shards in one transaction (one statement, then one tally
    /// per sweep), each fenced by its lease epoch and part key as
    /// [`Store::complete`]; per commit: done, [`StoreError::Stale`] or
    /// [`StoreError::BadKey`]. A database error fails them all (none is written).
    pub async fn complete_many(&self, commits: &[Commit], now_ms: i64) -> Result<Vec<Result<()>>> {
        /// A commit that names its own attempt's part, with what the key says.
        struct Named {
            index: usize,
            sweep: i64,
            attempt: i32,
        }
        let mut results: Vec<Option<Result<()>>> = commits.iter().map(|_| None).collect();
        let mut batch: Vec<Named> = Vec::new();
        let mut later = Vec::new(); // the same shard twice: after this batch
        let mut seen = std::collections::HashSet::new();
        for (i, c) in commits.iter().enumerate() {
            let named = jagged_domain::keys::parse_part_key(&c.out.object_key).filter(|k| k.shard == c.shard && k.epoch == c.epoch);
            match named {
                Some(_) if !seen.insert(c.shard) => later.push(i),
                Some(k) => batch.push(Named { index: i, sweep: k.sweep, attempt: k.attempt }),
                None => {}
            }
        }
        if !batch.is_empty() {
            let of = |n: &Named| &commits[n.index];
            let failed: Vec<(i64, &jagged_domain::task::FailedItem)> =
                batch.iter().flat_map(|n| of(n).failed.iter().map(move |f| (of(n).shard, f))).collect();
            let next: Vec<(i64, u32, u32)> = batch.iter().flat_map(|n| of(n).next_ring.iter().map(move |&(i, r)| (of(n).shard, i, r))).collect();
            let mut tx = self.pool.begin().await?;
            let rows: Vec<PgCompleted> = sqlx::query_as(include_str!("../../queries/shards/complete.sql"))
                .bind(batch.iter().map(|n| of(n).shard).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).epoch).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| n.sweep).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| n.attempt).collect::<Vec<i32>>())
                .bind(batch.iter().map(|n| of(n).out.object_key.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.rows).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).out.sha256.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).worker).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).out.provider.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.seconds).collect::<Vec<f64>>())
                .bind(batch.iter().map(|n| of(n).out.model_key.clone()).collect::<Vec<Option<String>>>())
                .bind(batch.iter().map(|n| of(n).failed.len() as i64).collect::<Vec<i64>>())
                .bind(ts(now_ms))
                .bind(failed.iter().map(|f| f.0).collect::<Vec<i64>>())
                .bind(failed.iter().map(|f| f.1.index as i32).collect::<Vec<i32>>())
                .bind(failed.iter().map(|f| f.1.name.clone()).collect::<Vec<String>>())
                .bind(failed.iter().map(|f| f.1.reason.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.busy_seconds).collect::<Vec<f64>>())
                .bind(batch.iter().map(|n| of(n).out.precision.clone().unwrap_or_default()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.runtime.clone().unwrap_or_default()).collect::<Vec<String>>())
                .bind(next.iter().map(|x| x.0).collect::<Vec<i64>>())
                .bind(next.iter().map(|x| x.1 as i32).collect::<Vec<i32>>())
                .bind(next.iter().map(|x| x.2 as i32).collect::<Vec<i32>>())
                .fetch_all(&mut *tx)
                .await?;
            let done: Vec<i64> = rows.iter().filter(|r| r.kind == "shard").map(|r| r.id).collect();
            let changes: Vec<crate::sweeps::Tally> = rows
                .iter()
                .filter(|r| r.kind == "sweep")
                .map(|r| crate::sweeps::Tally {
                    sweep: r.id,
                    total_shards: r.added_shards,
                    inferences_total: r.added_inferences,
                    shards_done: r.shards,
                    inferences_done: r.inferences,
                    inferences_failed: r.skipped,
                    failed_items: r.failed,
                    ..Default::default()
                })
                .collect();
            if !changes.is_empty() {
                Self::tally(&mut tx, &changes, now_ms).await?;
            }
            tx.commit().await?;
            for n in &batch {
                if done.contains(&of(n).shard) {
                    results[n.index] = Some(Ok(()));
                }
            }
        }
        if !later.is_empty() {
            let again: Vec<Commit> = later.iter().map(|&i| commits[i].clone()).collect();
            for (i, r) in later.into_iter().zip(Box::pin(self.complete_many(&again, now_ms)).await?) {
                results[i] = Some(r);
            }
        }
        // Nothing was committed for the rest: a lost lease, or a key other than
        // the attempt's own part.
        let mut out = Vec::with_capacity(commits.len());
        for (c, r) in commits.iter().zip(results) {
            out.push(match r {
                Some(r) => r,
                None => Err(self.refusal(c).await?),
            });
        }
        Ok(out)
    }

    /// Why a commit was not written: a wrong part key for the current lease, or
    /// a stale lease.
    async fn refusal(&self, c: &Commit) -> Result<StoreError> {
        let row: Option<PgLease> = sqlx::query_as(include_str!("../../queries/shards/lease_of.sql")).bind(c.shard).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) if r.state == ShardState::Leased.as_str() && r.lease_epoch == c.epoch => {
                let expected = jagged_domain::keys::part_key(r.sweep_id, c.shard, r.attempt, c.epoch);
                let own = jagged_domain::keys::PartKey { sweep: r.sweep_id, shard: c.shard, attempt: r.attempt, epoch: c.epoch };
                if jagged_domain::keys::parse_part_key(&c.out.object_key) != Some(own) {
                    StoreError::BadKey { shard: c.shard, key: c.out.object_key.clone(), expected }
                } else {
                    StoreError::Stale(c.shard)
                }
            }
            _ => StoreError::Stale(c.shard),
        })
    }

    /// Records a failed attempt under its lease epoch: requeued with backoff, or
    /// failed for good after the sweep's `max_attempts` reported failures (or at
    /// once when not retryable). `busy`: the attempt's busy seconds, for cost.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail(
        &self,
        shard: i64,
        epoch: i64,
        error: &str,
        retryable: bool,
        busy: f64,
        now_ms: i64,
        policy: &LeasePolicy,
    ) -> Result<ShardState> {
        self.end_leased(shard, epoch, Ended::Failed { retryable }, error, busy, now_ms, policy).await
    }

    /// Takes back a shard a stopping worker handed back under its lease epoch:
    /// queued again at once, counted as a lost lease (not a failure).
    pub async fn hand_back(&self, shard: i64, epoch: i64, busy: f64, now_ms: i64, policy: &LeasePolicy) -> Result<ShardState> {
        self.end_leased(shard, epoch, Ended::HandedBack, "", busy, now_ms, policy).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn end_leased(
        &self,
        shard: i64,
        epoch: i64,
        ended: Ended,
        error: &str,
        busy: f64,
        now_ms: i64,
        policy: &LeasePolicy,
    ) -> Result<ShardState> {
        let mut tx = self.pool.begin().await?;
        let mut row: PgLocked = sqlx::query_as(include_str!("../../queries/shards/lock_leased.sql"))
            .bind(shard)
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::Stale(shard))?;
        row.busy_seconds = row.busy_seconds.max(busy);
        let state = Self::release(&mut tx, &row, ended, error, now_ms, policy).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Sends a locked leased shard where `policy` says after `ended`.
    async fn release(tx: &mut sqlx::PgConnection, l: &PgLocked, ended: Ended, error: &str, now_ms: i64, policy: &LeasePolicy) -> Result<ShardState> {
        let (counters, ended) = match ended {
            Ended::Expired { worker, .. } => {
                let leased_ms = l.leased_at.map(|t| t.timestamp_millis()).unwrap_or(now_ms);
                let (counters, fleet) = super::evidence::weigh(tx, l.id, &l.counters(), worker, leased_ms, now_ms, policy).await?;
                (counters, Ended::Expired { worker, fleet })
            }
            _ => (l.counters(), ended),
        };
        let next = policy.after(&counters, ended, l.max_attempts.max(0) as u32, error);
        let outcome = match ended {
            Ended::Failed { .. } => "failed",
            Ended::HandedBack => "handed_back",
            Ended::Expired { .. } => "abandoned",
        };
        let wall = l.leased_at.map(|t| ((now_ms - t.timestamp_millis()) as f64 / 1000.0).max(0.0)).unwrap_or(0.0);
        sqlx::query(include_str!("../../queries/shards/attempt.sql"))
            .bind(l.id)
            .bind(l.lease_epoch)
            .bind(l.sweep_id)
            .bind(l.model_idx)
            .bind(l.worker_id)
            .bind(outcome)
            .bind(l.busy_seconds)
            .bind(wall)
            .bind(ts(now_ms))
            .execute(&mut *tx)
            .await?;
        sqlx::query(include_str!("../../queries/shards/release.sql"))
            .bind(l.id)
            .bind(next.state.as_str())
            .bind(ts(now_ms + next.delay_ms))
            .bind(&next.error)
            .bind(ts(now_ms))
            .bind(next.counters.failures as i32)
            .bind(next.counters.lost as i32)
            .bind(&next.counters.lost_by)
            .execute(&mut *tx)
            .await?;
        if next.state == ShardState::Failed {
            Self::count_failed(tx, l.sweep_id, l.inferences, now_ms).await?;
        }
        Ok(next.state)
    }

    /// Requeues (with backoff) or fails shards whose lease expired before `now`;
    /// returns how many it released.
    pub async fn reap(&self, now_ms: i64, policy: &LeasePolicy, batch: i64) -> Result<usize> {
        self.reap_since(now_ms, None, policy, batch).await
    }

    /// [`Store::reap`] of the leases whose deadline lies from `since_ms` on
    /// (all, with `None`).
    pub async fn reap_since(&self, now_ms: i64, since_ms: Option<i64>, policy: &LeasePolicy, batch: i64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let locked: Vec<PgLocked> = sqlx::query_as(include_str!("../../queries/shards/lock_expired.sql"))
            .bind(ts(now_ms))
            .bind(batch)
            .bind(ts(since_ms.unwrap_or(0)))
            .fetch_all(&mut *tx)
            .await?;
        for l in &locked {
            // A lease with no holder cannot be: count it against no worker.
            let ended = Ended::Expired { worker: l.worker_id.unwrap_or(0), fleet: None };
            Self::release(&mut tx, l, ended, "", now_ms, policy).await?;
        }
        tx.commit().await?;
        Ok(locked.len())
    }
}
