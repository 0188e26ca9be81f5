//! The coordinator: a gRPC server in front of PostgreSQL. It plans sweeps into
//! shards at submit, hands out leases, renews them on heartbeats, commits fenced
//! outputs, and runs a reaper that requeues expired leases with backoff.
//!
//! It keeps no state of its own besides caches: the immutable resolved forms of
//! running sweeps, fair-share passes, counter samples for throughput, and the
//! commits waiting to be written together. Kill it at any time and start
//! another; PostgreSQL holds the truth.
#![deny(missing_docs)]

mod commits;
pub mod metrics;
pub mod web;

use jagged_domain::lease::LeasePolicy;
use jagged_domain::plan::plan_sized;
use jagged_domain::share::FairShare;
use jagged_domain::spec::ResolvedSweep;
use jagged_domain::status::{ShardError, SweepState, SweepStatus};
use jagged_domain::task::{ShardTask, TaskItem};
use jagged_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use jagged_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use jagged_proto::v1::{
    self as pb, CancelRequest, CompleteManyRequest, CompleteManyResponse, CompleteRequest, CompleteResponse, FailRequest, FailResponse,
    HeartbeatRequest, HeartbeatResponse, LeaseRequest, LeaseResponse, ListRequest, ListResponse, RegisterRequest, RegisterResponse, RetryRequest,
    RetryResponse, StatusRequest, SubmitRequest, SubmitResponse,
};
use jagged_proto::ServiceError;
use jagged_store::{now_ms, Commit, Held, Output, Store, StoreError};
use sha2::Digest;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Coordinator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease timing.
    pub policy: LeasePolicy,
    /// How often the reaper looks for expired leases.
    pub reap_interval: Duration,
    /// Largest gRPC message accepted or sent, bytes.
    pub max_message: usize,
    /// Prices per device-hour by device kind, for sweeps that give none.
    pub prices: jagged_domain::cost::Prices,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: LeasePolicy::default(),
            reap_interval: Duration::from_secs(2),
            max_message: jagged_proto::MAX_MESSAGE,
            prices: Default::default(),
        }
    }
}

/// The shared state behind both services.
#[derive(Clone)]
pub struct Coordinator {
    store: Store,
    config: Config,
    /// Resolved sweeps never change after submit, so caching them is safe; a std
    /// Mutex suffices since no lock is held across an await.
    sweeps: Arc<Mutex<HashMap<i64, Arc<ResolvedSweep>>>>,
    /// Each cached sweep's widened pairs (also fixed at submit).
    widenings: Arc<Mutex<HashMap<i64, Arc<Vec<jagged_store::Widened>>>>>,
    /// Held while a resolved sweep is read from PostgreSQL, so that many lease
    /// calls arriving together for a sweep not yet cached read it once.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// Counter samples per sweep, from status requests, for throughput and ETA.
    progress: Arc<Mutex<HashMap<i64, jagged_domain::progress::Progress>>>,
    /// Fair share across running sweeps, and when it was last synced (ms).
    share: Arc<Mutex<(FairShare, i64)>>,
    /// Concurrent commits, written together.
    commits: commits::GroupCommit,
    /// Prometheus metrics.
    metrics: metrics::Metrics,
}

/// Committed shards of a model whose throughput sizes new shards.
pub const RATE_WINDOW: i64 = 50;

/// How often the set of running sweeps is re-read for fair share.
const SHARE_SYNC_MS: i64 = 1_000;

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

/// Most commits one `CompleteMany` call may carry.
const MAX_COMMITS_PER_CALL: usize = 1024;

impl Coordinator {
    /// Commits shards' outputs (one `Complete`, or a `CompleteMany`'s), all in
    /// the same group: what `Complete` would answer for each, in order.
    async fn commit_all(&self, requests: Vec<CompleteRequest>) -> Vec<Result<(), Status>> {
        let mut about = Vec::with_capacity(requests.len());
        let commits = requests
            .into_iter()
            .map(|r| {
                about.push((r.shard_id, r.lease_epoch, r.worker_id, r.seconds));
                let out = Output {
                    object_key: r.object_key,
                    rows: r.rows,
                    sha256: r.sha256,
                    lease_epoch: r.lease_epoch,
                    worker_id: r.worker_id,
                    provider: r.execution_provider,
                    seconds: r.seconds,
                    model_key: (!r.model_key.is_empty()).then_some(r.model_key),
                    busy_seconds: r.busy_seconds,
                    precision: (!r.precision.is_empty()).then_some(r.precision),
                    runtime: (!r.runtime.is_empty()).then_some(r.runtime),
                };
                let failed = r.failed_items.into_iter().map(Into::into).collect();
                let next_ring = r.next_ring.iter().map(|n| (n.index, n.reference_top1)).collect();
                Commit { shard: r.shard_id, epoch: r.lease_epoch, worker: r.worker_id, out, failed, next_ring }
            })
            .collect();
        let started = std::time::Instant::now();
        let results = self.commits.commit_all(&self.store, commits).await;
        let secs = started.elapsed().as_secs_f64();
        let outcome = |o: &str| self.metrics.commits.get_or_create(&metrics::OutcomeLabel { outcome: o.into() }).inc();
        about
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
                        Err(self.store_err(e).into())
                    }
                    Err(e) => {
                        outcome("refused");
                        Err(self.store_err(e).into())
                    }
                }
            })
            .collect()
    }

    /// A store error as the caller should see it; a database that gives no
    /// connection is named by its address.
    fn store_err(&self, e: StoreError) -> ServiceError {
        match e {
            StoreError::Stale(_) => ServiceError::Stale(e.to_string()),
            StoreError::NoSweep(_) | StoreError::NoWorker(_) => ServiceError::NotFound(e.to_string()),
            e if e.no_connection() => ServiceError::Unavailable(format!(
                "PostgreSQL at {} gave no connection within 10 s (is it running and reachable?)",
                self.store.address()
            )),
            StoreError::Db(_) | StoreError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
            StoreError::Data(_) | StoreError::Format { .. } => ServiceError::Internal(e.to_string()),
            StoreError::BadKey { .. } | StoreError::Refused(_) => ServiceError::Invalid(e.to_string()),
        }
    }

    /// A coordinator over a migrated store.
    pub fn new(store: Store, config: Config) -> Coordinator {
        Coordinator {
            store,
            config,
            sweeps: Default::default(),
            widenings: Default::default(),
            loading: Default::default(),
            progress: Default::default(),
            share: Default::default(),
            commits: Default::default(),
            metrics: metrics::Metrics::new(),
        }
    }

    /// The coordinator's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The store behind it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The prices per device-hour that apply to a sweep: the coordinator's,
    /// overridden by those given at its submit.
    pub async fn prices(&self, id: i64) -> Result<jagged_domain::cost::Prices, ServiceError> {
        let mut prices = self.config.prices.clone();
        prices.extend(self.store.prices(id).await.map_err(|e| self.store_err(e))?);
        Ok(prices)
    }

    /// What a sweep's attempts spent, with its prices.
    pub async fn spent(&self, id: i64) -> Result<(Vec<jagged_store::Spent>, jagged_domain::cost::Prices), ServiceError> {
        Ok((self.store.spent(id).await.map_err(|e| self.store_err(e))?, self.prices(id).await?))
    }

    /// Keeps the metrics read from PostgreSQL (sweeps, shards, workers, cost)
    /// current until `shutdown`: running sweeps every `every` (their cost and
    /// leased shards every [`COST_TICKS`] of those or more, as [`SLOW_SHARE`]
    /// says), finished ones once.
    pub async fn gauges(self, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        let mut finished = std::collections::HashSet::new();
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
        finished: &mut std::collections::HashSet<i64>,
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

    /// Each model's measured inferences per second, for sizing its shards: over
    /// its last [`RATE_WINDOW`] committed shards, the rate of the execution
    /// provider that ran most of them (the fleet's usual device kind). Only
    /// asked when the spec does not fix the images per shard.
    async fn measured_rates(&self, sweep: &ResolvedSweep) -> Result<Vec<Option<f64>>, ServiceError> {
        let mut out = Vec::with_capacity(sweep.models.len());
        for m in &sweep.models {
            if sweep.spec.shard.images.is_some() {
                out.push(None);
                continue;
            }
            let by_provider = self.store.throughput(&m.key, RATE_WINDOW).await.map_err(|e| self.store_err(e))?;
            let best = by_provider.into_iter().max_by(|a, b| a.shards.cmp(&b.shards).then(b.provider.cmp(&a.provider)));
            if let Some(b) = &best {
                tracing::info!(model = %m.name, provider = %b.provider, per_sec = b.per_sec, shards = b.shards, "sizing shards from measured throughput");
            }
            out.push(best.map(|b| b.per_sec));
        }
        Ok(out)
    }

    /// Running sweeps in fair-share order (re-read from the database at most
    /// every [`SHARE_SYNC_MS`]).
    async fn share_order(&self, now: i64) -> Result<Vec<i64>, ServiceError> {
        let synced = self.share.lock().unwrap().1;
        if now - synced >= SHARE_SYNC_MS || now < synced {
            let running = self.store.running_sweeps().await.map_err(|e| self.store_err(e))?;
            // Finished sweeps leave the cache (a status call reloads one if needed).
            self.sweeps.lock().unwrap().retain(|id, _| running.iter().any(|r| r.id == *id));
            self.widenings.lock().unwrap().retain(|id, _| running.iter().any(|r| r.id == *id));
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

    async fn resolved(&self, id: i64) -> Result<Arc<ResolvedSweep>, ServiceError> {
        if let Some(s) = self.sweeps.lock().unwrap().get(&id) {
            return Ok(s.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(s) = self.sweeps.lock().unwrap().get(&id) {
            return Ok(s.clone()); // read by the call this one waited for
        }
        let s = Arc::new(self.store.resolved(id).await.map_err(|e| self.store_err(e))?);
        self.sweeps.lock().unwrap().insert(id, s.clone());
        Ok(s)
    }

    /// A sweep's widened pairs (cached as its resolved form is).
    async fn widenings(&self, id: i64) -> Result<Arc<Vec<jagged_store::Widened>>, ServiceError> {
        if let Some(w) = self.widenings.lock().unwrap().get(&id) {
            return Ok(w.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(w) = self.widenings.lock().unwrap().get(&id) {
            return Ok(w.clone());
        }
        let w = Arc::new(self.store.widenings(id).await.map_err(|e| self.store_err(e))?);
        self.widenings.lock().unwrap().insert(id, w.clone());
        Ok(w)
    }

    /// Where a claimed shard of a widened pair takes its other rows from: the
    /// earlier family and its parts that hold the shard's images.
    async fn widen_from(&self, c: &jagged_store::Claimed) -> Result<Option<jagged_domain::task::WidenFrom>, ServiceError> {
        let widenings = self.widenings(c.sweep_id).await?;
        let Some(w) = widenings.iter().find(|w| (w.model_idx as i32, w.family_idx as i32) == (c.model_idx, c.family_idx)) else {
            return Ok(None);
        };
        let parts = self.store.widen_parts(w.from_sweep, &w.from_key, c.image_lo, c.image_hi).await.map_err(|e| self.store_err(e))?;
        Ok(Some(jagged_domain::task::WidenFrom { family: w.from_family.clone(), parts }))
    }

    async fn status(&self, id: i64) -> Result<SweepStatus, ServiceError> {
        let s = self.store.sweep(id).await.map_err(|e| self.store_err(e))?;
        let leased = self.store.leased_count(id).await.map_err(|e| self.store_err(e))? as u32;
        let errors = self.store.shard_errors(id, 20).await.map_err(|e| self.store_err(e))?;
        let alive = self.store.workers_alive(now_ms() - 3 * self.config.policy.heartbeat_ms).await.map_err(|e| self.store_err(e))?;
        // The resolved sweep (its image list can be large) only to name failed shards' models and families.
        let resolved = if errors.is_empty() { None } else { Some(self.resolved(id).await?) };
        let (spent, prices) = self.spent(id).await?;
        let cost = jagged_domain::cost::Totals::of(&spent, &prices);
        let finished = (s.done + s.failed + s.cancelled) as u32;
        let (rate, eta) = {
            let mut all = self.progress.lock().unwrap();
            let p = all.entry(id).or_default();
            p.observe(now_ms(), s.inferences_done);
            let running = s.state == SweepState::Running;
            let eta = if running { p.eta_secs(s.inferences_total - s.inferences_done - s.inferences_failed).unwrap_or(-1.0) } else { 0.0 };
            let rate = if running { p.rate().unwrap_or(0.0) } else { 0.0 };
            if !running {
                all.remove(&id);
            }
            (rate, eta)
        };
        Ok(SweepStatus {
            inferences_per_sec: rate,
            eta_secs: eta,
            sweep_id: s.id,
            name: s.name,
            state: s.state,
            priority: s.priority,
            total: s.total as u32,
            queued: (s.total as u32).saturating_sub(finished + leased),
            leased,
            done: s.done as u32,
            failed: s.failed as u32,
            cancelled: s.cancelled as u32,
            inferences_done: s.inferences_done,
            inferences_failed: s.inferences_failed,
            inferences_total: s.inferences_total,
            failed_items: s.failed_items,
            created_at: s.created_at.to_rfc3339(),
            finished_at: s.finished_at.map(|t| t.to_rfc3339()),
            errors: errors
                .into_iter()
                .map(|e| ShardError {
                    shard_id: e.shard_id,
                    model: resolved.as_ref().and_then(|r| r.models.get(e.model_idx as usize)).map(|m| m.name.clone()).unwrap_or_default(),
                    family: resolved
                        .as_ref()
                        .and_then(|r| r.spec.families.get(e.family_idx as usize))
                        .map(|f| f.name().to_string())
                        .unwrap_or_default(),
                    error: e.error,
                })
                .collect(),
            workers_alive: alive as u32,
            busy_seconds: cost.busy_done,
            busy_seconds_lost: cost.busy_lost,
            estimated_cost: cost.cost.unwrap_or(-1.0),
        })
    }

    /// Keeps the gRPC health service current until `shutdown`: the services
    /// `jagged.v1.WorkerService` and `jagged.v1.AdminService` serve while the
    /// process runs (liveness); the server as a whole (service `""`) serves
    /// while PostgreSQL answers (readiness), checked every 2 s.
    pub async fn health(self, reporter: tonic_health::server::HealthReporter, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        use tonic_health::ServingStatus;
        for name in ["jagged.v1.WorkerService", "jagged.v1.AdminService"] {
            reporter.set_service_status(name, ServingStatus::Serving).await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut was = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    reporter.set_service_status("", ServingStatus::NotServing).await;
                    return;
                }
            }
            let ok = matches!(tokio::time::timeout(Duration::from_secs(5), self.store.ping()).await, Ok(Ok(())));
            if was != Some(ok) {
                let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status("", status).await;
                if was.is_some() {
                    tracing::warn!(ready = ok, postgres = %self.store.address(), "readiness changed");
                }
                was = Some(ok);
            }
        }
    }

    /// Runs the reaper until `shutdown` resolves. A pass looks at the leases
    /// whose deadline passed since the last complete pass began (less
    /// [`REAP_OVERLAP_MS`]), and every [`REAP_ALL_MS`] at all of them, for any a
    /// pass skipped while their row was locked.
    pub async fn reaper(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        const BATCH: i64 = 1000;
        let mut tick = tokio::time::interval(self.config.reap_interval);
        let (mut through, mut all_at): (Option<i64>, i64) = (None, 0);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = now_ms();
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
                Err(e) => tracing::warn!(error = %e, "reaper pass failed; will retry"),
            }
        }
    }
}

#[tonic::async_trait]
impl WorkerService for Coordinator {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let r = req.into_inner();
        let id = self.store.register_worker(&r.name, &r.host, &r.device, now_ms()).await.map_err(|e| self.store_err(e))?;
        tracing::info!(worker = id, name = %r.name, host = %r.host, device = %r.device, "worker registered");
        Ok(Response::new(RegisterResponse { worker_id: id, lease_ms: self.config.policy.lease_ms, heartbeat_ms: self.config.policy.heartbeat_ms }))
    }

    async fn lease(&self, req: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        let r = req.into_inner();
        let max = r.max_shards.clamp(1, 64) as i64;
        let only = (r.sweep_id != 0).then_some(r.sweep_id);
        if let Some(id) = only {
            // A worker kept for one sweep learns when that sweep is over.
            let s = self.store.sweep(id).await.map_err(|e| self.store_err(e))?;
            if s.state != SweepState::Running {
                return Err(ServiceError::Stale(format!("sweep {id} is {}: it has no more work", s.state)).into());
            }
        }
        let started = std::time::Instant::now();
        let claimed = self.claim(r.worker_id, max, &r.loaded_models, only).await?;
        self.metrics.claim_seconds.observe(started.elapsed().as_secs_f64());
        let now = now_ms();
        let mut shards = Vec::with_capacity(claimed.len());
        for c in claimed {
            self.metrics.leases.get_or_create(&metrics::SweepLabel { sweep: c.sweep_id.to_string() }).inc();
            self.metrics.queue_wait_seconds.observe(((now - c.queued_ms).max(0)) as f64 / 1000.0);
            let sweep = self.resolved(c.sweep_id).await?;
            let mut task = task_of(&sweep, &c)?;
            task.widen = self.widen_from(&c).await?;
            shards.push(pb::ShardTask::from(task));
        }
        Ok(Response::new(LeaseResponse { shards }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let r = req.into_inner();
        let held: Vec<Held> = r.held.iter().map(|h| Held { shard: h.shard_id, epoch: h.lease_epoch, busy: h.busy_seconds }).collect();
        let now = now_ms();
        let lost = self.store.heartbeat(r.worker_id, &held, now, &self.config.policy).await.map_err(|e| self.store_err(e))?;
        if r.leaving {
            self.store.leave_worker(r.worker_id, now).await.map_err(|e| self.store_err(e))?;
            tracing::info!(worker = r.worker_id, "worker left");
        }
        Ok(Response::new(HeartbeatResponse { lost, lease_deadline_ms: self.config.policy.deadline(now) }))
    }

    async fn complete(&self, req: Request<CompleteRequest>) -> Result<Response<CompleteResponse>, Status> {
        let result = self.commit_all(vec![req.into_inner()]).await.pop();
        result.unwrap_or_else(|| Err(Status::internal("no commit outcome")))?;
        Ok(Response::new(CompleteResponse {}))
    }

    async fn complete_many(&self, req: Request<CompleteManyRequest>) -> Result<Response<CompleteManyResponse>, Status> {
        let commits = req.into_inner().commits;
        if commits.len() > MAX_COMMITS_PER_CALL {
            let n = commits.len();
            return Err(ServiceError::Invalid(format!("{n} commits in one call; at most {MAX_COMMITS_PER_CALL}")).into());
        }
        let outcomes = self
            .commit_all(commits)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(()) => pb::CommitOutcome { code: tonic::Code::Ok as i32, message: String::new() },
                Err(s) => pb::CommitOutcome { code: s.code() as i32, message: s.message().to_string() },
            })
            .collect();
        Ok(Response::new(CompleteManyResponse { outcomes }))
    }

    async fn fail(&self, req: Request<FailRequest>) -> Result<Response<FailResponse>, Status> {
        let r = req.into_inner();
        let (now, policy) = (now_ms(), &self.config.policy);
        let state = if r.handed_back {
            let state = self.store.hand_back(r.shard_id, r.lease_epoch, r.busy_seconds, now, policy).await.map_err(|e| self.store_err(e))?;
            tracing::info!(shard = r.shard_id, worker = r.worker_id, state = state.as_str(), "shard handed back by a stopping worker");
            state
        } else {
            let state = self
                .store
                .fail(r.shard_id, r.lease_epoch, &r.error, r.retryable, r.busy_seconds, now, policy)
                .await
                .map_err(|e| self.store_err(e))?;
            tracing::warn!(shard = r.shard_id, state = state.as_str(), error = %r.error, "shard attempt failed");
            state
        };
        Ok(Response::new(FailResponse { state: pb::ShardState::from(state) as i32 }))
    }
}

#[tonic::async_trait]
impl AdminService for Coordinator {
    async fn submit(&self, req: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let r = req.into_inner();
        let sweep =
            ResolvedSweep::try_from(r.sweep.ok_or_else(|| ServiceError::Invalid("malformed message: `SubmitRequest.sweep` is missing".into()))?)
                .map_err(ServiceError::from)?;
        sweep.validate().map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let rates = self.measured_rates(&sweep).await?;
        let shards = plan_sized(&sweep, &rates);
        // Content identity: the resolved sweep names models and images by their
        // SHA-256, so the same spec over the same files hashes the same.
        let canonical = serde_json::to_vec(&sweep).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hash = hex::encode(sha2::Sha256::digest(&canonical));
        let keys = pair_keys(&sweep).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let inserted =
            self.store.insert_sweep_once(&r.spec_toml, &sweep, &shards, Some(&hash), &keys, !r.again).await.map_err(|e| self.store_err(e))?;
        let (id, existing) = (inserted.id, inserted.existing);
        self.share.lock().unwrap().1 = 0; // re-read the running sweeps at the next lease
        if !r.prices.is_empty() {
            let prices: jagged_domain::cost::Prices = r.prices.into_iter().collect();
            self.store.set_prices(id, &prices).await.map_err(|e| self.store_err(e))?;
        }
        let reused: u32 = inserted.adopted.iter().map(|a| a.shards).sum();
        let planned = shards.iter().filter(|s| !inserted.adopted.iter().any(|a| (a.model_idx, a.family_idx) == (s.model, s.family))).count();
        if existing {
            tracing::info!(sweep = id, name = %sweep.spec.name, "the same sweep was submitted again; returning the existing one");
        } else {
            for a in &inserted.adopted {
                let model = sweep.models.get(a.model_idx as usize).map(|m| m.name.as_str()).unwrap_or("?");
                tracing::info!(sweep = id, model, family = a.family_idx, from = a.from_sweep, shards = a.shards, "results reused");
            }
            for w in &inserted.widened {
                let model = sweep.models.get(w.model_idx as usize).map(|m| m.name.as_str()).unwrap_or("?");
                tracing::info!(
                    sweep = id,
                    model,
                    family = w.family_idx,
                    from = w.from_sweep,
                    inferences = w.inferences,
                    full = w.full,
                    "grid widened: rows of the earlier grid taken as they are"
                );
            }
            tracing::info!(sweep = id, name = %sweep.spec.name, shards = planned, reused, "sweep submitted");
        }
        let sorted = |mut v: Vec<i64>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let from = sorted(inserted.adopted.iter().map(|a| a.from_sweep).collect());
        let widened = &inserted.widened;
        Ok(Response::new(SubmitResponse {
            sweep_id: id,
            shards: planned as u32 + reused,
            existing,
            reused_shards: reused,
            reused_inferences: inserted.adopted.iter().map(|a| a.inferences).sum::<i64>() as u64,
            reused_from: from,
            widened_pairs: widened.len() as u32,
            widened_inferences: widened.iter().map(|w| w.inferences).sum::<i64>() as u64,
            widened_full: widened.iter().map(|w| w.full).sum::<i64>() as u64,
            widened_from: sorted(widened.iter().map(|w| w.from_sweep).collect()),
        }))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        Ok(Response::new(Coordinator::status(self, req.into_inner().sweep_id).await?.into()))
    }

    async fn list(&self, _req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let rows = self.store.sweeps().await.map_err(|e| self.store_err(e))?;
        let mut sweeps = Vec::with_capacity(rows.len());
        for r in rows {
            sweeps.push(Coordinator::status(self, r.id).await?.into());
        }
        Ok(Response::new(ListResponse { sweeps }))
    }

    async fn retry(&self, req: Request<RetryRequest>) -> Result<Response<RetryResponse>, Status> {
        let r = req.into_inner();
        let shard = (r.shard_id != 0).then_some(r.shard_id);
        let shard_ids = self.store.retry_failed(r.sweep_id, shard, now_ms()).await.map_err(|e| self.store_err(e))?;
        self.share.lock().unwrap().1 = 0; // the sweep runs again: re-read the running sweeps
        tracing::info!(sweep = r.sweep_id, shards = shard_ids.len(), "failed shards requeued");
        Ok(Response::new(RetryResponse { shard_ids }))
    }

    async fn cancel(&self, req: Request<CancelRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        let id = req.into_inner().sweep_id;
        self.store.cancel(id, now_ms()).await.map_err(|e| self.store_err(e))?;
        self.share.lock().unwrap().1 = 0;
        tracing::info!(sweep = id, "sweep cancelled");
        Ok(Response::new(Coordinator::status(self, id).await?.into()))
    }
}

/// What shapes the rows of one (model, family) pair: the model (its content
/// key, name and card), the family, the items (names, content keys, labels,
/// frames) and the run settings that change rows. Shard sizes, batch sizes and
/// priorities do not; neither do the other pairs of the sweep.
#[derive(serde::Serialize)]
struct PairContent<'a> {
    format: u32,
    model: &'a jagged_domain::spec::ResolvedModel,
    family: &'a jagged_domain::transform::Family,
    items: &'a [jagged_domain::spec::ImageRef],
    keep_probs: bool,
    jpeg_decoder: jagged_domain::image::JpegDecoder,
}

/// The content keys (SHA-256, hex) of every (model, family) pair of `sweep`:
/// two sweeps' pairs with the same exact key have the same rows, so a new
/// sweep adopts a finished pair's parts instead of running it again; pairs
/// with the same key without the extent ([`Family::without_extent`]) differ at
/// most in their grids' extents, so one may take rows from the other.
///
/// [`Family::without_extent`]: jagged_domain::transform::Family::without_extent
pub fn pair_keys(sweep: &ResolvedSweep) -> Result<jagged_store::PairKeys, serde_json::Error> {
    let key =
        |model: &jagged_domain::spec::ResolvedModel, family: &jagged_domain::transform::Family, f: usize| -> Result<String, serde_json::Error> {
            let content = PairContent {
                format: 1,
                model,
                family,
                items: sweep.items(f),
                keep_probs: sweep.spec.run.keep_probs,
                jpeg_decoder: sweep.spec.run.jpeg_decoder,
            };
            Ok(hex::encode(sha2::Sha256::digest(serde_json::to_vec(&content)?)))
        };
    let mut keys = jagged_store::PairKeys::default();
    for model in &sweep.models {
        let (mut exact, mut wide) = (Vec::new(), Vec::new());
        for (f, family) in sweep.spec.families.iter().enumerate() {
            exact.push(key(model, family, f)?);
            wide.push(family.without_extent().map(|w| key(model, &w, f)).transpose()?);
        }
        keys.exact.push(exact);
        keys.wide.push(wide);
    }
    Ok(keys)
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

/// Who may call: the bearer tokens of workers and of admin clients (`None`: no
/// token required, for a coordinator on loopback).
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Token of the worker service.
    pub worker: Option<jagged_proto::auth::Token>,
    /// Token of the admin service.
    pub admin: Option<jagged_proto::auth::Token>,
}

/// The coordinator's HTTP listeners.
#[derive(Default)]
pub struct Http {
    /// Serves `/metrics` only.
    pub metrics: Option<tokio::net::TcpListener>,
    /// Serves the dashboard and `/metrics`.
    pub dashboard: Option<(tokio::net::TcpListener, web::WebConfig)>,
}

/// Serves both services on `listener` (with gRPC health and server
/// reflection), the HTTP listeners in `http`, and runs the reaper and the
/// metrics refresh, until `shutdown`.
pub async fn serve(
    coordinator: Coordinator,
    listener: tokio::net::TcpListener,
    auth: Auth,
    tls: Option<tonic::transport::Identity>,
    http: Http,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use jagged_proto::auth::RequireToken;
    use tonic::service::interceptor::InterceptedService;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn(coordinator.clone().reaper(rx.clone()));
    let (health, health_service) = tonic_health::server::health_reporter();
    let checker = tokio::spawn(coordinator.clone().health(health, rx.clone()));
    let gauges = tokio::spawn(coordinator.clone().gauges(Duration::from_secs(2), rx.clone()));
    let mut web = Vec::new();
    if let Some(l) = http.metrics {
        web.push(tokio::spawn(web::serve(l, web::metrics_router(coordinator.clone()), rx.clone())));
    }
    if let Some((l, config)) = http.dashboard {
        match web::dashboard_router(coordinator.clone(), config) {
            Ok(router) => web.push(tokio::spawn(web::serve(l, router, rx.clone()))),
            Err(e) => tracing::error!(error = %e, "the dashboard could not start"),
        }
    }
    // Server reflection (v1, and v1alpha for older clients), so tools such as
    // grpcurl work without the proto file.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jagged_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("the compiled descriptors are valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the compiled descriptors are valid");
    // TCP_NODELAY on every accepted connection: small responses (a lease, an
    // acknowledged commit) must not wait for Nagle's algorithm and the peer's
    // delayed ACK, tens of milliseconds each.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let max = coordinator.config.max_message;
    let workers = WorkerServiceServer::new(coordinator.clone()).max_decoding_message_size(max).max_encoding_message_size(max);
    let admin = AdminServiceServer::new(coordinator).max_decoding_message_size(max).max_encoding_message_size(max);
    let mut server = tonic::transport::Server::builder();
    if let Some(id) = tls {
        jagged_proto::transport::install_crypto();
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(id))?;
    }
    let result = server
        .add_service(InterceptedService::new(workers, RequireToken(auth.worker)))
        .add_service(InterceptedService::new(admin, RequireToken(auth.admin)))
        // The standard grpc.health.v1 service, without a token (probes and load
        // balancers carry none).
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = tx.send(true);
    let _ = reaper.await;
    let _ = checker.await;
    let _ = gauges.await;
    for w in web {
        if let Ok(Err(e)) = w.await {
            tracing::warn!(error = %e, "the HTTP listener ended with an error");
        }
    }
    result
}
