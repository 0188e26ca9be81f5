//! The worker: registers with the coordinator, leases shards, runs them through
//! ONNX Runtime and commits one Parquet part per shard attempt.
//!
//! A shard runs in three steps: fetch (async: the model, once per worker, and the
//! shard's images from the object store), compute (one long-lived thread:
//! decode each image once, render every grid point straight into batch tensors
//! on host threads, ahead of and overlapped with ORT through a bounded queue,
//! then per-image neighbour metrics on full probability vectors, in parallel),
//! and commit (upload the part under an attempt-specific key, then a fenced
//! commit). A shard's upload and commit run while the next shard is leased and
//! computed (one upload at a time).
//!
//! Where each part lives, in the order a shard meets them:
//! - [`config`]: the settings [`run`] is given ([`WorkerConfig`], [`Render`]);
//! - `rpc`: the client of the coordinator, and calls retried while it is away;
//! - `feeder`: leasing ahead, up to `prefetch` shards beside the one computing;
//! - `heartbeat`: leases renewed, and those lost noted so their shards stop;
//! - `fetch`: a shard's items and a widened grid's earlier rows;
//! - `execute` and `engines`: the engine cache and the compute thread a shard
//!   runs on;
//! - [`compute`]: the compute step itself ([`run_shard`]);
//! - `outcome`: the part written and committed, a failure reported, or the
//!   shard handed back;
//! - `commits`: the one task that sends commits, several per `CompleteMany`.
//!
//! A bad item (undecodable image, non-finite output) is recorded as a failed
//! item with its reason while the rest of the shard completes.
#![deny(missing_docs)]

mod commits;
pub mod compute;
pub mod config;
mod engines;
mod execute;
mod failure;
mod feeder;
mod fetch;
mod heartbeat;
pub mod metrics;
mod outcome;
mod rpc;

use commits::Committer;
use engines::Engines;
use feeder::{Feeder, Leased};
use heartbeat::{HeldLeases, Lost};
use jagged_domain::task::ShardTask;
use jagged_proto::v1::RegisterRequest;
use outcome::{Lease, Reporter};
use rpc::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub use compute::{pads_batches, run_shard, Busy, Fetched, RunError, ShardInput, ShardOutput, Taken, Timing};
pub use config::{default_host_threads, Render, WorkerConfig};

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// ONNX Runtime cannot be loaded.
    #[error(transparent)]
    Runtime(#[from] jagged_infer::InferError),
    /// The worker's settings are unusable (coordinator URL, token, TLS).
    #[error("{0}")]
    Config(String),
    /// The coordinator refused to register the worker.
    #[error("registering with the coordinator: {}", jagged_proto::cause(.0))]
    Register(tonic::Status),
    /// The coordinator refused a lease request (not a transient failure).
    #[error("lease refused: {}", jagged_proto::cause(.0))]
    Lease(tonic::Status),
}

/// How a worker is told to stop: the number of stop signals received so far
/// (SIGTERM, SIGINT, Slurm's SIGUSR1).
pub type Stops = tokio::sync::watch::Receiver<u32>;

/// Runs the worker until told to stop or, with `exit_when_idle`, until no work
/// has been ready for that long (with `sweep`, until that sweep is over).
///
/// The first stop ends leasing; the shard in hand has `stop_grace` to finish
/// and commit, else (or at a second stop) it is handed back to the coordinator,
/// which queues it again at once as a lost lease, not a failure.
pub async fn run(config: WorkerConfig, stops: Stops) -> Result<(), WorkerError> {
    jagged_infer::init_runtime()?;
    let (stop, hand_back) = watch_stops(stops, config.stop_grace);
    let client = rpc::connect(&config)?;
    let (worker_id, heartbeat_every) = register(&config, &client, &stop).await?;
    let worker = Worker {
        committer: Committer::start(client.clone(), config.coordinator.clone(), stop.clone()),
        config,
        client,
        worker_id,
        stop,
        hand_back,
        held: Default::default(),
        lost: Default::default(),
        engines: Default::default(),
    };
    let hb = tokio::spawn(heartbeat::heartbeat(
        worker.client.clone(),
        worker.config.coordinator.clone(),
        worker_id,
        worker.held.clone(),
        worker.lost.clone(),
        heartbeat_every,
    ));
    // Leases run ahead of the work: the feeder keeps up to `prefetch` leased
    // shards waiting beside the one being computed.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let feeder = tokio::spawn(worker.feeder().run(tx));
    // Shards computed and not yet reported: at most `prefetch + 1`, so a
    // worker never holds many finished shards the coordinator has not seen.
    let depth = worker.config.prefetch as usize + 1;
    let reports = Arc::new(tokio::sync::Semaphore::new(depth));
    worker.compute_all(rx, &reports).await;
    let result = feeder.await.unwrap_or_else(|e| Err(WorkerError::Config(format!("the lease task ended: {e}"))));
    // Stopping or not, the last shards' commits go out before the worker ends.
    let _ = reports.acquire_many(depth as u32).await;
    let Worker { client, committer, .. } = worker;
    drop(committer);
    hb.abort();
    heartbeat::say_goodbye(&client, worker_id).await;
    result
}

/// Watches for stop signals: the first sets `stop` (lease no more), and
/// `hand_back` follows once the grace has passed or at a second signal.
fn watch_stops(mut stops: Stops, grace: Duration) -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let hand_back = Arc::new(AtomicBool::new(false));
    let (s, h) = (stop.clone(), hand_back.clone());
    tokio::spawn(async move {
        if stops.wait_for(|n| *n >= 1).await.is_err() {
            return;
        }
        s.store(true, Ordering::Relaxed);
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "told to stop: leasing no more; a shard in hand that does not finish in time is handed back"
        );
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = stops.wait_for(|n| *n >= 2) => {}
        }
        h.store(true, Ordering::Relaxed);
    });
    (stop, hand_back)
}

/// Registers the worker: its id, and how often the coordinator wants heartbeats.
async fn register(config: &WorkerConfig, client: &Client, stop: &AtomicBool) -> Result<(i64, Duration), WorkerError> {
    let reg = rpc::retry("register", &config.coordinator, stop, || {
        let mut c = client.clone();
        let req = RegisterRequest { name: config.name.clone(), host: config.host.clone(), device: config.engine.device.to_string() };
        async move { c.register(req).await }
    })
    .await
    .map_err(WorkerError::Register)?
    .into_inner();
    tracing::info!(worker = reg.worker_id, name = %config.name, "registered");
    Ok((reg.worker_id, Duration::from_millis(reg.heartbeat_ms.max(100) as u64)))
}

/// What the worker's tasks share.
#[derive(Clone)]
struct Worker {
    config: WorkerConfig,
    client: Client,
    worker_id: i64,
    /// Told to stop: lease no more.
    stop: Arc<AtomicBool>,
    /// The grace is over: abandon the shard in hand and hand it back.
    hand_back: Arc<AtomicBool>,
    held: HeldLeases,
    lost: Lost,
    engines: Engines,
    committer: Committer,
}

impl Worker {
    fn feeder(&self) -> Feeder {
        Feeder {
            config: self.config.clone(),
            client: self.client.clone(),
            worker_id: self.worker_id,
            stop: self.stop.clone(),
            held: self.held.clone(),
            engines: self.engines.clone(),
            room: Arc::new(tokio::sync::Semaphore::new(self.config.prefetch as usize + 1)),
        }
    }

    /// Computes the leased shards one after another as the feeder sends them;
    /// each shard's upload and commit run (one upload at a time, commits
    /// waiting in the committer, up to `reports` of them) while the next is
    /// computed.
    async fn compute_all(&self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Leased>, reports: &Arc<tokio::sync::Semaphore>) {
        // The previous shard's part is written once this ends (dropped).
        let mut writing: Option<tokio::sync::oneshot::Receiver<()>> = None;
        while let Some(Leased { wire, busy, room }) = rx.recv().await {
            let started = Instant::now();
            let model_name = wire.model.as_ref().map(|m| m.name.clone()).unwrap_or_default();
            let model_key = wire.model.as_ref().map(|m| m.key.clone()).unwrap_or_default();
            let lease = Lease { sweep: wire.sweep_id, shard: wire.shard_id, epoch: wire.lease_epoch, attempt: wire.attempt };
            // Every event of this attempt carries its sweep, shard, attempt and worker.
            let span = tracing::info_span!("shard", sweep = lease.sweep, shard = lease.shard, attempt = lease.attempt, worker = self.worker_id);
            let outcome = self.compute(wire, lease, busy.clone()).instrument(span.clone()).await;
            // Computing is over: room for the feeder to lease another shard.
            drop(room);
            if let Some(previous) = writing.take() {
                let _ = previous.await;
            }
            let Ok(report) = reports.clone().acquire_owned().await else { break };
            let (written, written_rx) = tokio::sync::oneshot::channel();
            writing = Some(written_rx);
            let worker = self.clone();
            tokio::spawn(async move {
                let _report = report;
                let reporter = Reporter {
                    config: &worker.config,
                    client: &worker.client,
                    committer: &worker.committer,
                    worker_id: worker.worker_id,
                    stop: &worker.stop,
                    lost: &worker.lost,
                    busy: &busy,
                    model_name: &model_name,
                };
                let reported = reporter.report(lease, model_key, outcome, started, written).instrument(span.clone()).await;
                if let Err(e) = reported {
                    span.in_scope(|| tracing::error!(error = %e, "shard could not be reported"));
                }
                worker.let_go(lease);
            });
        }
    }

    /// Computes one leased shard: `Ok(None)` when it is not to run (leased
    /// ahead, and the worker is stopping or the lease was lost meanwhile).
    async fn compute(&self, wire: jagged_proto::v1::ShardTask, lease: Lease, busy: Arc<Busy>) -> Result<Option<execute::Computed>, failure::Failure> {
        if self.stop.load(Ordering::Relaxed) || self.lost.lock().unwrap().contains(&(lease.shard, lease.epoch)) {
            return Ok(None);
        }
        match ShardTask::try_from(wire) {
            Ok(task) => {
                tracing::info!(model = %task.model.name, images = task.items.len(), "running shard");
                execute::execute(&self.config, task, &self.engines, &self.lost, &self.hand_back, busy).await
            }
            // A task this worker cannot read is a failed attempt: retried, so a
            // worker of another build may read it.
            Err(e) => Err(failure::retryable(e.to_string())),
        }
    }

    /// Lets go of one reported lease. Only this lease: once its failure is
    /// reported the shard may be retried and leased here again under a new
    /// epoch, which the heartbeat must keep renewing.
    fn let_go(&self, lease: Lease) {
        let mut held = self.held.lock().unwrap();
        if held.get(&lease.shard).map(|h| h.0) == Some(lease.epoch) {
            held.remove(&lease.shard);
            self.lost.lock().unwrap().remove(&(lease.shard, lease.epoch));
        }
    }
}
