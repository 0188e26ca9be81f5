//! The rules workers call: register, lease (fair share across sweeps, model
//! affinity), heartbeat, commit (fenced, written in groups) and fail.

use crate::metrics;
use crate::Coordinator;
use jagged_domain::lease::ShardState;
use jagged_domain::spec::ResolvedSweep;
use jagged_domain::status::SweepState;
use jagged_domain::task::{ShardTask, TaskItem, WidenFrom};
use jagged_proto::ServiceError;
use jagged_store::{now_ms, Commit, Held, StoreError};

/// How often the set of running sweeps is re-read for fair share.
const SHARE_SYNC_MS: i64 = 1_000;

/// Most commits one call may carry.
pub const MAX_COMMITS_PER_CALL: usize = 1024;

/// A registered worker's id and the lease timing it must keep.
pub struct Registered {
    /// The worker's id.
    pub worker_id: i64,
    /// Lease length without a heartbeat, ms.
    pub lease_ms: i64,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: i64,
}

/// What a heartbeat answers.
pub struct Beat {
    /// The shards whose leases the worker no longer holds.
    pub lost: Vec<i64>,
    /// The renewed leases' deadline, ms since the epoch.
    pub deadline_ms: i64,
}

/// A worker's report of a shard attempt it did not commit.
pub struct FailReport {
    /// The reporting worker.
    pub worker: i64,
    /// The shard.
    pub shard: i64,
    /// The lease epoch it ran under.
    pub epoch: i64,
    /// The error (empty when handed back).
    pub error: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// Handed back unfinished by a stopping worker: a lost lease, not a failure.
    pub handed_back: bool,
    /// Seconds the device was busy on the attempt.
    pub busy_seconds: f64,
}

impl Coordinator {
    /// Registers a worker.
    pub async fn register(&self, name: &str, host: &str, device: &str) -> Result<Registered, ServiceError> {
        let id = self.store.register_worker(name, host, device, now_ms()).await.map_err(|e| self.store_err(e))?;
        tracing::info!(worker = id, name, host, device, "worker registered");
        Ok(Registered { worker_id: id, lease_ms: self.config.policy.lease_ms, heartbeat_ms: self.config.policy.heartbeat_ms })
    }

    /// Leases up to `max_shards` (1..=64) shards to a worker holding the
    /// models `loaded` (by key), of the sweep `only` when given (refused,
    /// as stale, once that sweep is over).
    pub async fn lease(&self, worker: i64, max_shards: u32, loaded: &[String], only: Option<i64>) -> Result<Vec<ShardTask>, ServiceError> {
        let max = max_shards.clamp(1, 64) as i64;
        if let Some(id) = only {
            // A worker kept for one sweep learns when that sweep is over.
            let s = self.store.sweep(id).await.map_err(|e| self.store_err(e))?;
            if s.state != SweepState::Running {
                return Err(ServiceError::Stale(format!("sweep {id} is {}: it has no more work", s.state)));
            }
        }
        let started = std::time::Instant::now();
        let claimed = self.claim(worker, max, loaded, only).await?;
        self.metrics.claim_seconds.observe(started.elapsed().as_secs_f64());
        let now = now_ms();
        let mut shards = Vec::with_capacity(claimed.len());
        for c in claimed {
            self.metrics.leases.get_or_create(&metrics::SweepLabel { sweep: c.sweep_id.to_string() }).inc();
            self.metrics.queue_wait_seconds.observe(((now - c.queued_ms).max(0)) as f64 / 1000.0);
            let sweep = self.resolved(c.sweep_id).await?;
            let mut task = task_of(&sweep, &c)?;
            task.widen = self.widen_from(&c).await?;
            shards.push(task);
        }
        Ok(shards)
    }

    /// Renews a worker's leases in `held`; a leaving worker is marked gone.
    pub async fn heartbeat(&self, worker: i64, held: &[Held], leaving: bool) -> Result<Beat, ServiceError> {
        let now = now_ms();
        let lost = self.store.heartbeat(worker, held, now, &self.config.policy).await.map_err(|e| self.store_err(e))?;
        if leaving {
            self.store.leave_worker(worker, now).await.map_err(|e| self.store_err(e))?;
            tracing::info!(worker, "worker left");
        }
        Ok(Beat { lost, deadline_ms: self.config.policy.deadline(now) })
    }

    /// Commits shards' outputs, all in the same group: each commit's own
    /// outcome, in order (a stale lease, a part key that is not the attempt's
    /// own, or a repeated commit refuses only that commit). More than
    /// [`MAX_COMMITS_PER_CALL`] at once are refused.
    pub async fn commit_all(&self, commits: Vec<Commit>) -> Result<Vec<Result<(), ServiceError>>, ServiceError> {
        if commits.len() > MAX_COMMITS_PER_CALL {
            let n = commits.len();
            return Err(ServiceError::Invalid(format!("{n} commits in one call; at most {MAX_COMMITS_PER_CALL}")));
        }
        let about: Vec<(i64, i64, i64, f64)> = commits.iter().map(|c| (c.shard, c.epoch, c.worker, c.out.seconds)).collect();
        let started = std::time::Instant::now();
        let results = self.commits.commit_all(&self.store, commits).await;
        let secs = started.elapsed().as_secs_f64();
        let outcome = |o: &str| self.metrics.commits.get_or_create(&metrics::OutcomeLabel { outcome: o.into() }).inc();
        Ok(about
            .into_iter()
            .zip(results)
            .map(|((shard, epoch, worker, seconds), result)| {
                self.metrics.commit_seconds.observe(secs);
                match result {
                    Ok(()) => {
                        outcome("accepted");
                        self.metrics.shard_seconds.observe(seconds);
                        Ok(())
                    }
                    Err(e @ StoreError::Stale(_)) => {
                        outcome("stale");
                        tracing::warn!(shard, epoch, worker, "refused a stale commit");
                        Err(self.store_err(e))
                    }
                    Err(e) => {
                        outcome("refused");
                        Err(self.store_err(e))
                    }
                }
            })
            .collect())
    }

    /// Records an attempt that ended without a commit: handed back (queued
    /// again at once) or failed (retried with backoff, or failed for good).
    pub async fn fail(&self, r: FailReport) -> Result<ShardState, ServiceError> {
        let (now, policy) = (now_ms(), &self.config.policy);
        if r.handed_back {
            let state = self.store.hand_back(r.shard, r.epoch, r.busy_seconds, now, policy).await.map_err(|e| self.store_err(e))?;
            tracing::info!(shard = r.shard, worker = r.worker, state = state.as_str(), "shard handed back by a stopping worker");
            return Ok(state);
        }
        let state = self.store.fail(r.shard, r.epoch, &r.error, r.retryable, r.busy_seconds, now, policy).await.map_err(|e| self.store_err(e))?;
        tracing::warn!(shard = r.shard, state = state.as_str(), error = %r.error, "shard attempt failed");
        Ok(state)
    }

    /// Running sweeps in fair-share order (re-read from the database at most
    /// every [`SHARE_SYNC_MS`]).
    async fn share_order(&self, now: i64) -> Result<Vec<i64>, ServiceError> {
        let synced = self.share.lock().unwrap().1;
        if now - synced >= SHARE_SYNC_MS || now < synced {
            let running = self.store.running_sweeps().await.map_err(|e| self.store_err(e))?;
            self.keep_cached(&running.iter().map(|r| r.id).collect::<Vec<_>>());
            let mut share = self.share.lock().unwrap();
            share.0.sync(&running);
            share.1 = now;
        }
        Ok(self.share.lock().unwrap().0.order())
    }

    /// Claims up to `max` shards for a worker holding `loaded` models: from the
    /// sweep whose fair share is most behind that has ready work, of a model
    /// the worker holds if that sweep has any queued, else of its lowest model.
    async fn claim(&self, worker: i64, max: i64, loaded: &[String], only: Option<i64>) -> Result<Vec<jagged_store::Claimed>, ServiceError> {
        let now = now_ms();
        for id in self.share_order(now).await?.into_iter().filter(|id| only.is_none_or(|o| o == *id)) {
            let sweep = self.resolved(id).await?;
            let held = sweep.models.iter().enumerate().filter(|(_, m)| loaded.contains(&m.key)).map(|(i, _)| Some(i as i32));
            for model in held.chain([None]) {
                let claimed = self.store.claim_from(worker, id, model, max, now, &self.config.policy).await.map_err(|e| self.store_err(e))?;
                if !claimed.is_empty() {
                    let work: i64 = claimed.iter().map(|c| c.inferences).sum();
                    self.share.lock().unwrap().0.charge(id, work as f64);
                    return Ok(claimed);
                }
            }
        }
        Ok(vec![])
    }

    /// Where a claimed shard of a widened pair takes its other rows from: the
    /// earlier family and its parts that hold the shard's images.
    async fn widen_from(&self, c: &jagged_store::Claimed) -> Result<Option<WidenFrom>, ServiceError> {
        let widenings = self.widenings(c.sweep_id).await?;
        let Some(w) = widenings.iter().find(|w| (w.model_idx as i32, w.family_idx as i32) == (c.model_idx, c.family_idx)) else {
            return Ok(None);
        };
        let parts = self.store.widen_parts(w.from_sweep, &w.from_key, c.image_lo, c.image_hi).await.map_err(|e| self.store_err(e))?;
        Ok(Some(WidenFrom { family: w.from_family.clone(), parts }))
    }
}

/// The task of a claimed shard: its model, family and items from the sweep.
fn task_of(sweep: &ResolvedSweep, c: &jagged_store::Claimed) -> Result<ShardTask, ServiceError> {
    let model =
        sweep.models.get(c.model_idx as usize).ok_or_else(|| ServiceError::Internal(format!("shard `{}`: model index out of range", c.id)))?;
    let family = sweep
        .spec
        .families
        .get(c.family_idx as usize)
        .ok_or_else(|| ServiceError::Internal(format!("shard `{}`: family index out of range", c.id)))?;
    let items = sweep.items(c.family_idx as usize);
    Ok(ShardTask {
        shard_id: c.id,
        lease_epoch: c.lease_epoch,
        attempt: c.attempt,
        sweep_id: c.sweep_id,
        model: model.clone(),
        family_index: c.family_idx as u32,
        family: family.clone(),
        items: match &c.items {
            // An adaptive shard after its first ring: the images still searched.
            Some(listed) => listed
                .iter()
                .filter(|(i, _)| (c.image_lo as u32..c.image_hi as u32).contains(i))
                .filter_map(|&(i, reference)| items.get(i as usize).map(|img| TaskItem { index: i, image: img.clone(), reference }))
                .collect(),
            None => (c.image_lo..c.image_hi)
                .filter_map(|i| items.get(i as usize).map(|img| TaskItem { index: i as u32, image: img.clone(), reference: None }))
                .collect(),
        },
        batch_size: sweep.spec.run.batch_size,
        keep_probs: sweep.spec.run.keep_probs,
        jpeg_decoder: sweep.spec.run.jpeg_decoder,
        lease_deadline_ms: c.deadline_ms,
        ring: c.ring,
        widen: None,
    })
}
