//! The worker: registers with the coordinator, leases shards, runs them through
//! ONNX Runtime and commits one Parquet part per shard attempt.
//!
//! A shard runs in three steps: fetch (async: the model, once per worker, and the
//! shard's images from the object store), compute (blocking thread: decode each
//! image once, render every grid point straight into batch tensors on host
//! threads, ahead of and overlapped with ORT through a bounded queue, then
//! per-image neighbour metrics on full probability vectors, in parallel), and
//! commit (upload the part under an attempt-specific key, then a fenced
//! commit). A shard's upload and commit run while the next shard is leased and
//! computed (one upload at a time). Commits go out through one committer task:
//! those that became ready while a call was in flight go together in one
//! `CompleteMany` call (each with its own outcome), or one `Complete` each
//! where the coordinator has no `CompleteMany`.
//!
//! A heartbeat task renews the leases of held shards; a shard whose lease was
//! lost (expired, cancelled) is abandoned at the next batch boundary. A bad item
//! (undecodable image, non-finite output) is recorded as a failed item with its
//! reason while the rest of the shard completes.
#![deny(missing_docs)]

mod run;

use jagged_domain::task::ShardTask;
use jagged_infer::{Engine, EngineOptions};
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use jagged_proto::v1::{CompleteManyRequest, CompleteRequest, FailRequest, HeartbeatRequest, HeldShard, LeaseRequest, RegisterRequest};
use object_store::ObjectStore;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tracing::Instrument;

pub mod metrics;
pub use run::{pads_batches, run_shard, Busy, RunError, ShardInput, ShardOutput, Taken, Timing};

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

/// Why a shard's outcome could not be reported (logged; the lease then expires
/// and the shard is retried).
#[derive(Debug, thiserror::Error)]
#[error("complete failed: {}", .0.message())]
struct ReportError(tonic::Status);

/// Worker settings.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Coordinator URL, e.g. `http://127.0.0.1:7070`.
    pub coordinator: String,
    /// Bearer token of the worker service, if the coordinator requires one.
    pub token: Option<jagged_proto::auth::Token>,
    /// PEM file of the CA that signed the coordinator's certificate (`https://`).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Where models, images and result parts live.
    pub store: Arc<dyn ObjectStore>,
    /// Name shown in logs and the database.
    pub name: String,
    /// ONNX Runtime session settings: threads, device, precision.
    pub engine: EngineOptions,
    /// Threads for decoding, rendering and metrics, overlapped with inference.
    pub host_threads: usize,
    /// Where grid inputs are rendered.
    pub render: Render,
    /// Wait between lease attempts when no work is ready.
    pub idle_poll: Duration,
    /// Shards leased ahead and kept waiting beside the one being computed
    /// (0: lease only when the previous shard's computation is over), so a
    /// fast worker never waits on a lease call.
    pub prefetch: u32,
    /// Exit once no work has been ready for this long (None: run until stopped).
    pub exit_when_idle: Option<Duration>,
    /// Work only for this sweep, and exit once it is over.
    pub sweep: Option<i64>,
    /// Once told to stop, how long the shard in hand may take to finish before
    /// it is handed back to the coordinator (a second signal hands it back at once).
    pub stop_grace: Duration,
    /// How long writing a result part is retried (with backoff) before the
    /// attempt is reported failed with the store's error.
    pub store_retry: Duration,
    /// Prometheus metrics (shared by the sessions of one process).
    pub metrics: metrics::WorkerMetrics,
}

/// Where a worker renders a grid's inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Render {
    /// On host threads, as float tensors handed to ONNX Runtime.
    Host,
    /// Inside the model's graph (`jagged_onnx::views`), by ONNX Runtime on the
    /// model's device: each image is handed over once as 8-bit pixels and each
    /// input as a 40-byte view (and, for a rotation, its sine and cosine; for a
    /// sub-pixel window, its interpolation weights). Shards of plain windows
    /// (circular shifts as windows of their crop tiled with its wrap),
    /// rotations and sub-pixel crops render there; those with other points
    /// (inpainted, per-layer) still render on the host.
    Graph,
    /// In the graph on CUDA (the host-to-device copy is what it saves); on
    /// the CPU only sub-pixel grids, whose 16-tap resampling the graph's
    /// matrix products do faster than the host's loops (`just bench compute
    /// --grid subpixel`: 1.08x), while plain windows measure alike and
    /// rotations slower there.
    #[default]
    Auto,
}

impl Render {
    /// Whether shards on `device` whose inputs `rendering` can make render in
    /// the graph.
    pub fn in_graph(self, device: jagged_infer::Device, rendering: jagged_infer::Rendering) -> bool {
        match self {
            Render::Host => false,
            Render::Graph => true,
            Render::Auto => matches!(device, jagged_infer::Device::Cuda { .. }) || rendering == jagged_infer::Rendering::Shifts,
        }
    }
}

impl std::str::FromStr for Render {
    type Err = String;

    fn from_str(s: &str) -> Result<Render, String> {
        match s {
            "host" => Ok(Render::Host),
            "graph" => Ok(Render::Graph),
            "auto" => Ok(Render::Auto),
            _ => Err(format!("unknown render `{s}`: expected host, graph or auto")),
        }
    }
}

impl std::fmt::Display for Render {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Render::Host => "host",
            Render::Graph => "graph",
            Render::Auto => "auto",
        })
    }
}

/// Default host threads: on CUDA all cores but one (at most 8); on the CPU the
/// cores ONNX Runtime's `intra_threads` leave free, where 0 (it takes them all)
/// means rendering inline between runs rather than oversubscribing the cores.
pub fn default_host_threads(cores: usize, intra_threads: usize, device: jagged_infer::Device) -> usize {
    match device {
        jagged_infer::Device::Cuda { .. } => cores.saturating_sub(1).clamp(1, 8),
        jagged_infer::Device::Cpu => cores.saturating_sub(intra_threads),
    }
}

type Client = WorkerServiceClient<tonic::service::interceptor::InterceptedService<Channel, jagged_proto::auth::WithToken>>;

/// Calls `f` until it succeeds or fails with a non-retryable status, backing off
/// up to 5 s between tries while the coordinator at `url` is unreachable. The
/// first failure is logged with the URL and its cause; while it lasts, a
/// reminder every 30 s (or when the cause changes).
async fn retry<T, F, Fut>(what: &str, url: &str, stop: &AtomicBool, mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut delay = Duration::from_millis(100);
    let mut said: Option<(String, Instant)> = None;
    loop {
        match f().await {
            Ok(v) => {
                if said.is_some() {
                    tracing::info!(call = what, coordinator = url, "coordinator reachable again");
                }
                return Ok(v);
            }
            Err(s) if jagged_proto::status_is_retryable(&s) && !stop.load(Ordering::Relaxed) => {
                let cause = jagged_proto::cause(&s);
                if said.as_ref().is_none_or(|(c, at)| *c != cause || at.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!(call = what, coordinator = url, error = %cause, "coordinator unavailable; retrying");
                    said = Some((cause, Instant::now()));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(s) => return Err(s),
        }
    }
}

/// Engines by model key, with when each was last used, locked by the computing
/// thread for a whole shard; `loaded` names them for the async side, which must
/// never wait for a shard to end (its single thread also runs the heartbeats).
#[derive(Default)]
struct EngineCache {
    engines: Mutex<HashMap<String, (Engine, u64)>>,
    loaded: Mutex<Vec<String>>,
    compute: ComputeThread,
}

/// The thread every shard is computed on, one after another, for the life of
/// the worker: handing each shard to a tokio blocking thread (and the local
/// store's reads and writes to others) cost several thread switches per shard,
/// more than a one-image shard's rendering. It runs outside the async runtime,
/// so a local store's calls run on it directly.
struct ComputeThread {
    jobs: Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

impl Default for ComputeThread {
    fn default() -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("jagged-compute".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("starting the compute thread");
        ComputeThread { jobs: Mutex::new(jobs) }
    }
}

impl ComputeThread {
    /// Runs `f` on the compute thread once the shards before it are done; a
    /// panic in it is an error here (the thread goes on).
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ =
                tx.send(r.map_err(|p| {
                    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
                }));
        };
        self.jobs.lock().unwrap().send(Box::new(job)).map_err(|_| "the compute thread has ended".to_string())?;
        rx.await.map_err(|_| "the compute thread has ended".to_string())?.map_err(|m| format!("panicked: {m}"))
    }
}

type Engines = Arc<EngineCache>;

/// Models a worker keeps loaded; past this, the least recently used is dropped.
const MAX_ENGINES: usize = 4;

/// Orders engine uses.
static ENGINE_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How a worker is told to stop: the number of stop signals received so far
/// (SIGTERM, SIGINT, Slurm's SIGUSR1).
pub type Stops = tokio::sync::watch::Receiver<u32>;

/// Runs the worker until told to stop or, with `exit_when_idle`, until no work
/// has been ready for that long (with `sweep`, until that sweep is over).
///
/// The first stop ends leasing; the shard in hand has `stop_grace` to finish
/// and commit, else (or at a second stop) it is handed back to the coordinator,
/// which queues it again at once as a lost lease, not a failure.
pub async fn run(config: WorkerConfig, mut stops: Stops) -> Result<(), WorkerError> {
    jagged_infer::init_runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let hand_back = Arc::new(AtomicBool::new(false));
    {
        let (stop, hand_back, grace) = (stop.clone(), hand_back.clone(), config.stop_grace);
        tokio::spawn(async move {
            if stops.wait_for(|n| *n >= 1).await.is_err() {
                return;
            }
            stop.store(true, Ordering::Relaxed);
            tracing::info!(
                grace_secs = grace.as_secs_f64(),
                "told to stop: leasing no more; a shard in hand that does not finish in time is handed back"
            );
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = stops.wait_for(|n| *n >= 2) => {}
            }
            hand_back.store(true, Ordering::Relaxed);
        });
    }
    let channel = jagged_proto::transport::endpoint(&config.coordinator, config.tls_ca.as_deref())
        .map_err(WorkerError::Config)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect_lazy();
    let with_token = jagged_proto::auth::WithToken::new(config.token.as_ref()).map_err(WorkerError::Config)?;
    let client = WorkerServiceClient::with_interceptor(channel, with_token).max_decoding_message_size(jagged_proto::MAX_MESSAGE);
    let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let reg = retry("register", &config.coordinator, &stop, || {
        let mut c = client.clone();
        let req = RegisterRequest { name: config.name.clone(), host: host.clone(), device: config.engine.device.to_string() };
        async move { c.register(req).await }
    })
    .await
    .map_err(WorkerError::Register)?
    .into_inner();
    let worker_id = reg.worker_id;
    tracing::info!(worker = worker_id, name = %config.name, "registered");

    let held: HeldLeases = Default::default();
    let lost: Lost = Default::default();
    let hb = tokio::spawn(heartbeat(
        client.clone(),
        config.coordinator.clone(),
        worker_id,
        held.clone(),
        lost.clone(),
        Duration::from_millis(reg.heartbeat_ms.max(100) as u64),
    ));
    let engines: Engines = Default::default();
    // Leases run ahead of the work: the feeder keeps up to `prefetch` leased
    // shards waiting beside the one being computed.
    let room = Arc::new(tokio::sync::Semaphore::new(config.prefetch as usize + 1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let feeder = {
        let f = Feeder {
            config: config.clone(),
            client: client.clone(),
            worker_id,
            stop: stop.clone(),
            held: held.clone(),
            engines: engines.clone(),
            room,
        };
        tokio::spawn(f.run(tx))
    };
    // Shards computed and not yet reported: at most `prefetch + 1`, so a
    // worker never holds many finished shards the coordinator has not seen.
    let depth = config.prefetch as usize + 1;
    let reports = Arc::new(tokio::sync::Semaphore::new(depth));
    let committer = Committer::start(client.clone(), config.coordinator.clone(), stop.clone());
    // The previous shard's part is written once this ends (dropped).
    let mut writing: Option<tokio::sync::oneshot::Receiver<()>> = None;
    while let Some(Leased { wire, busy, room }) = rx.recv().await {
        let started = Instant::now();
        let model_name = wire.model.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let lease = Lease { sweep: wire.sweep_id, shard: wire.shard_id, epoch: wire.lease_epoch, attempt: wire.attempt };
        // Every event of this attempt carries its sweep, shard, attempt and worker.
        let span = tracing::info_span!("shard", sweep = lease.sweep, shard = lease.shard, attempt = lease.attempt, worker = worker_id);
        let model_key = wire.model.as_ref().map(|m| m.key.clone()).unwrap_or_default();
        let outcome = if stop.load(Ordering::Relaxed) || lost.lock().unwrap().contains(&(lease.shard, lease.epoch)) {
            // Leased ahead but not started: handed back (stopping) or abandoned (lost).
            Ok(None)
        } else {
            match ShardTask::try_from(wire) {
                Ok(task) => {
                    span.in_scope(|| tracing::info!(model = %task.model.name, images = task.items.len(), "running shard"));
                    execute(&config, task, &engines, &lost, &hand_back, busy.clone()).instrument(span.clone()).await
                }
                // A task this worker cannot read is a failed attempt: retried, so a
                // worker of another build may read it.
                Err(e) => Err(Failure { message: e.to_string(), retryable: true }),
            }
        };
        // Computing is over: room for the feeder to lease another shard.
        drop(room);
        // The upload and commit of one shard run while the next is leased and
        // computed. One part is uploaded at a time (the only one kept in
        // memory); commits wait in the committer, up to `depth` reports.
        if let Some(previous) = writing.take() {
            let _ = previous.await;
        }
        let Ok(report) = reports.clone().acquire_owned().await else { break };
        let (written, written_rx) = tokio::sync::oneshot::channel();
        writing = Some(written_rx);
        let (config, client, stop, held, lost, committer) =
            (config.clone(), client.clone(), stop.clone(), held.clone(), lost.clone(), committer.clone());
        tokio::spawn(async move {
            let _report = report;
            let id = lease.shard;
            let ctx = Reporter {
                config: &config,
                client: &client,
                committer: &committer,
                worker_id,
                stop: &stop,
                lost: &lost,
                busy: &busy,
                model_name: &model_name,
            };
            let reported = ctx.report(lease, model_key, outcome, started, written).instrument(span.clone()).await;
            if let Err(e) = reported {
                span.in_scope(|| tracing::error!(error = %e, "shard could not be reported"));
            }
            // Only this lease is let go: once its failure is reported the shard
            // may be retried and leased here again under a new epoch, which the
            // heartbeat must keep renewing.
            let mut held = held.lock().unwrap();
            if held.get(&id).map(|h| h.0) == Some(lease.epoch) {
                held.remove(&id);
                lost.lock().unwrap().remove(&(id, lease.epoch));
            }
        });
    }
    let result = feeder.await.unwrap_or_else(|e| Err(WorkerError::Config(format!("the lease task ended: {e}"))));
    // Stopping or not, the last shards' commits go out before the worker ends.
    let _ = reports.acquire_many(depth as u32).await;
    drop(committer);
    hb.abort();
    // Say goodbye, so status stops counting this worker at once (best effort:
    // otherwise it stops counting after three missed heartbeats).
    let mut c = client.clone();
    let bye = c.heartbeat(HeartbeatRequest { worker_id, held: vec![], leaving: true });
    if let Ok(Err(s)) = tokio::time::timeout(Duration::from_secs(2), bye).await {
        tracing::warn!(error = %s.message(), "could not tell the coordinator this worker is leaving");
    }
    result
}

/// Leases the coordinator said this worker lost, as (shard, lease epoch): a
/// shard lost under one epoch may be leased here again under another.
type Lost = Arc<Mutex<HashSet<(i64, i64)>>>;

/// Leases in hand: shard -> (lease epoch, busy time of its attempt so far).
type HeldLeases = Arc<Mutex<HashMap<i64, (i64, Arc<Busy>)>>>;

/// A shard leased ahead of its run, holding its room in the worker's hand until
/// its computation ends.
struct Leased {
    wire: jagged_proto::v1::ShardTask,
    busy: Arc<Busy>,
    room: tokio::sync::OwnedSemaphorePermit,
}

/// Leases shards for the compute loop, ahead of need.
struct Feeder {
    config: WorkerConfig,
    client: Client,
    worker_id: i64,
    stop: Arc<AtomicBool>,
    held: HeldLeases,
    engines: Engines,
    /// `prefetch + 1` permits: one per shard leased and not yet computed.
    room: Arc<tokio::sync::Semaphore>,
}

impl Feeder {
    /// Leases whenever half the room is free, asking for all of it in one call,
    /// until told to stop, the sweep (with `sweep`) is over, or (with
    /// `exit_when_idle`) nothing was in hand and no work was ready for that long.
    /// Dropping `tx` ends the compute loop once it has run what was sent.
    async fn run(self, tx: tokio::sync::mpsc::UnboundedSender<Leased>) -> Result<(), WorkerError> {
        let Feeder { config, client, worker_id, stop, held, engines, room } = self;
        let mut idle_since = Instant::now();
        loop {
            // Wait until half the hand is free, so one call leases several
            // shards, then take all the room there is.
            let Ok(mut rooms) = room.clone().acquire_many_owned(config.prefetch.div_ceil(2).max(1)).await else { return Ok(()) };
            while let Ok(p) = room.clone().try_acquire_owned() {
                rooms.merge(p);
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let max_shards = rooms.num_permits() as u32;
            let leased = retry("lease", &config.coordinator, &stop, || {
                let mut c = client.clone();
                let loaded: Vec<String> = engines.loaded.lock().unwrap().clone();
                let sweep_id = config.sweep.unwrap_or(0);
                async move { c.lease(LeaseRequest { worker_id, max_shards, loaded_models: loaded, sweep_id }).await }
            })
            .await;
            let tasks = match leased {
                Ok(r) => r.into_inner().shards,
                Err(s) if stop.load(Ordering::Relaxed) => {
                    tracing::info!(error = %s.message(), "stopping");
                    return Ok(());
                }
                Err(s) if config.sweep.is_some() && s.code() == tonic::Code::FailedPrecondition => {
                    tracing::info!(reason = %s.message(), "the sweep is over; exiting");
                    return Ok(());
                }
                Err(s) => return Err(WorkerError::Lease(s)),
            };
            if tasks.is_empty() {
                drop(rooms);
                // Idle only with nothing in hand: a shard still computing or
                // committing may yet bring work (a radius sweep's next ring).
                if !held.lock().unwrap().is_empty() {
                    idle_since = Instant::now();
                } else if config.exit_when_idle.is_some_and(|limit| idle_since.elapsed() >= limit) {
                    tracing::info!("no work left; exiting");
                    return Ok(());
                }
                tokio::time::sleep(config.idle_poll).await;
                continue;
            }
            idle_since = Instant::now();
            for wire in tasks {
                let room = rooms.split(1).expect("one room per shard leased");
                let busy = Arc::new(Busy::default());
                held.lock().unwrap().insert(wire.shard_id, (wire.lease_epoch, busy.clone()));
                if tx.send(Leased { wire, busy, room }).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn heartbeat(client: Client, url: String, worker_id: i64, held: HeldLeases, lost: Lost, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let shards: Vec<HeldShard> = held
            .lock()
            .unwrap()
            .iter()
            .map(|(&shard_id, (lease_epoch, busy))| HeldShard { shard_id, lease_epoch: *lease_epoch, busy_seconds: busy.seconds() })
            .collect();
        let mut c = client.clone();
        match c.heartbeat(HeartbeatRequest { worker_id, held: shards.clone(), leaving: false }).await {
            Ok(r) => {
                let gone = r.into_inner().lost;
                if !gone.is_empty() {
                    tracing::warn!(shards = ?gone, "lost leases; abandoning those shards");
                    // Only leases still held as they were sent: one let go meanwhile
                    // (reported, or leased again under a new epoch) is not lost.
                    let held = held.lock().unwrap();
                    let still = shards.iter().filter(|h| gone.contains(&h.shard_id) && held.get(&h.shard_id).map(|x| x.0) == Some(h.lease_epoch));
                    lost.lock().unwrap().extend(still.map(|h| (h.shard_id, h.lease_epoch)));
                }
            }
            Err(s) => tracing::warn!(coordinator = %url, error = %jagged_proto::cause(&s), "heartbeat failed"),
        }
    }
}

/// The lease a shard ran under.
#[derive(Clone, Copy, Debug)]
struct Lease {
    sweep: i64,
    shard: i64,
    epoch: i64,
    attempt: i32,
}

/// What reporting a shard's outcome needs.
struct Reporter<'a> {
    config: &'a WorkerConfig,
    client: &'a Client,
    committer: &'a Committer,
    worker_id: i64,
    stop: &'a AtomicBool,
    lost: &'a Mutex<HashSet<(i64, i64)>>,
    /// The attempt's busy time.
    busy: &'a Busy,
    model_name: &'a str,
}

impl Reporter<'_> {
    /// Reports a shard's outcome: uploads its part and commits it, reports the
    /// failed attempt (a part the store would not take, with the store's
    /// error), or hands the shard back when this worker stopped before it ended.
    /// `written` is dropped once the part is written (or will not be).
    async fn report(
        &self,
        lease: Lease,
        model_key: String,
        outcome: Result<Option<Computed>, Failure>,
        started: Instant,
        written: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), ReportError> {
        let Reporter { config, client, committer, worker_id, stop, lost, busy, model_name } = *self;
        let (shard, epoch) = (lease.shard, lease.epoch);
        let m = &config.metrics;
        let (out, part, sha, stored) = match outcome {
            Ok(Some(Computed { out, part, sha256, stored })) => (out, part, sha256, stored),
            Ok(None) if lost.lock().unwrap().contains(&(shard, epoch)) => {
                m.ended("abandoned");
                tracing::warn!(shard, "lease lost; shard abandoned");
                return Ok(());
            }
            // Stopped before it finished: hand it back so another worker takes it now.
            Ok(None) => return self.hand_back(lease).await,
            Err(failure) => {
                m.ended("failed");
                return report_failure(client, &config.coordinator, worker_id, lease, failure, stop, busy.seconds()).await;
            }
        };
        let device = config.engine.device.to_string();
        let provider = out.provider;
        let key = jagged_artifacts::part_key(lease.sweep, shard, lease.attempt, epoch);
        let rows = out.rows as i64;
        let t = out.timing;
        let out_render = out.render;
        let (inferences, taken) = (out.inferences, out.taken);
        let failed_items = out.failed.len() as u64;
        let writing = Instant::now();
        let stored = match stored {
            // Written by the compute thread (a local store): its bytes need not
            // wait here for the commit.
            Some(secs) => {
                drop(part);
                m.stage("write", &device, provider, secs);
                Ok(true)
            }
            None => {
                let stored = write_part(config, &key, part, (shard, epoch), lost).await;
                m.stage("write", &device, provider, writing.elapsed().as_secs_f64());
                stored
            }
        };
        drop(written);
        match stored {
            Ok(true) => {}
            Ok(false) => {
                m.ended("abandoned");
                tracing::warn!(shard, "lease lost while the part was being written; shard abandoned");
                return Ok(());
            }
            Err(e) => {
                m.ended("failed");
                let failure = Failure { message: format!("writing the result part `{key}`: {e}"), retryable: true };
                return report_failure(client, &config.coordinator, worker_id, lease, failure, stop, busy.seconds()).await;
            }
        }
        let req = CompleteRequest {
            worker_id,
            shard_id: shard,
            lease_epoch: epoch,
            object_key: key,
            rows,
            sha256: sha,
            failed_items: out.failed.into_iter().map(Into::into).collect(),
            execution_provider: out.provider.into(),
            seconds: started.elapsed().as_secs_f64(),
            model_key,
            busy_seconds: t.run_secs,
            precision: out.precision.clone(),
            runtime: jagged_infer::runtime_version(),
            next_ring: out.next_ring.iter().map(|&(index, reference_top1)| jagged_proto::v1::NextRingItem { index, reference_top1 }).collect(),
        };
        let committing = Instant::now();
        let committed = committer.commit(req).await;
        m.stage("commit", &device, provider, committing.elapsed().as_secs_f64());
        for (stage, secs) in
            [("fetch", t.fetch_secs), ("decode", t.prepare_secs), ("render", t.starved_secs), ("inference", t.run_secs), ("metrics", t.finish_secs)]
        {
            m.stage(stage, &device, provider, secs);
        }
        let on = metrics::DeviceLabel { device: device.clone(), provider: provider.into() };
        m.busy_seconds.get_or_create(&on).inc_by(t.run_secs);
        match committed {
            Ok(_) => {
                m.ended("committed");
                let label = metrics::InferenceLabel { sweep: lease.sweep.to_string(), model: model_name.into(), device, provider: provider.into() };
                m.inferences.get_or_create(&label).inc_by(inferences as u64);
                m.items_failed.get_or_create(&on).inc_by(failed_items);
                tracing::info!(
                    shard,
                    rows,
                    inferences,
                    taken,
                    secs = started.elapsed().as_secs_f64(),
                    prepare = t.prepare_secs,
                    infer = t.run_secs,
                    starved = t.starved_secs,
                    finish = t.finish_secs,
                    render = out_render,
                    "shard committed"
                )
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                m.ended("stale");
                tracing::warn!(shard, "commit refused: lease is stale; the part is ignored")
            }
            Err(s) => return Err(ReportError(s)),
        }
        Ok(())
    }

    /// Hands a shard this stopping worker will not finish back to the coordinator
    /// (one try: if it fails, the lease expires and the reaper requeues it).
    async fn hand_back(&self, lease: Lease) -> Result<(), ReportError> {
        let req = FailRequest {
            worker_id: self.worker_id,
            shard_id: lease.shard,
            lease_epoch: lease.epoch,
            error: String::new(),
            retryable: true,
            handed_back: true,
            busy_seconds: self.busy.seconds(),
        };
        self.config.metrics.ended("handed_back");
        match self.client.clone().fail(req).await {
            Ok(_) => tracing::info!(shard = lease.shard, "stopping: shard handed back unfinished"),
            Err(s) => tracing::warn!(shard = lease.shard, error = %jagged_proto::cause(&s), "could not hand the shard back; its lease will expire"),
        }
        Ok(())
    }
}

/// Most commits sent in one `CompleteMany` call (the coordinator takes 1024).
const MAX_COMMITS_PER_CALL: usize = 256;

/// A commit waiting to be sent, and where its outcome goes.
type ReadyCommit = (CompleteRequest, tokio::sync::oneshot::Sender<Result<(), tonic::Status>>);

/// Sends the worker's commits to the coordinator, one call at a time: the
/// commits that became ready while a call was in flight go together in the
/// next. Ends once every handle is dropped and the queue is empty.
#[derive(Clone)]
struct Committer {
    queue: tokio::sync::mpsc::UnboundedSender<ReadyCommit>,
}

impl Committer {
    fn start(client: Client, url: String, stop: Arc<AtomicBool>) -> Committer {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(send_commits(client, url, stop, rx));
        Committer { queue }
    }

    /// Commits one shard: what `Complete` answers for it (transient failures
    /// are retried until the worker is told to stop).
    async fn commit(&self, req: CompleteRequest) -> Result<(), tonic::Status> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((req, tx)).map_err(|_| tonic::Status::unavailable("the committer has ended"))?;
        rx.await.unwrap_or_else(|_| Err(tonic::Status::unavailable("the committer has ended")))
    }
}

/// The committer's loop (see [`Committer`]).
async fn send_commits(client: Client, url: String, stop: Arc<AtomicBool>, mut rx: tokio::sync::mpsc::UnboundedReceiver<ReadyCommit>) {
    // Until the coordinator says it has no `CompleteMany` (an older build).
    let mut many = true;
    let mut batch: Vec<ReadyCommit> = Vec::new();
    while rx.recv_many(&mut batch, MAX_COMMITS_PER_CALL).await > 0 {
        let mut singles = Vec::new();
        if many && batch.len() > 1 {
            let req = CompleteManyRequest { commits: batch.iter().map(|(c, _)| c.clone()).collect() };
            let sent = retry("complete", &url, &stop, || {
                let mut c = client.clone();
                let req = req.clone();
                async move { c.complete_many(req).await }
            })
            .await;
            match sent {
                Ok(r) => {
                    let mut outcomes = r.into_inner().outcomes.into_iter();
                    for (commit, tx) in batch.drain(..) {
                        let status = match outcomes.next() {
                            Some(o) if o.code == tonic::Code::Ok as i32 => None,
                            Some(o) => Some(tonic::Status::new(tonic::Code::from(o.code), o.message)),
                            None => Some(tonic::Status::unavailable("the coordinator gave no outcome for this commit")),
                        };
                        match status {
                            None => drop(tx.send(Ok(()))),
                            // A transient refusal (the database was away) is
                            // retried on its own, as `Complete` would be.
                            Some(s) if jagged_proto::status_is_retryable(&s) && !stop.load(Ordering::Relaxed) => singles.push((commit, tx)),
                            Some(s) => drop(tx.send(Err(s))),
                        }
                    }
                }
                Err(s) if s.code() == tonic::Code::Unimplemented => {
                    tracing::info!(coordinator = %url, "the coordinator has no CompleteMany; committing one shard per call");
                    many = false;
                }
                Err(s) => {
                    for (_, tx) in batch.drain(..) {
                        let _ = tx.send(Err(s.clone()));
                    }
                }
            }
        }
        singles.append(&mut batch);
        for (commit, tx) in singles {
            let committed = retry("complete", &url, &stop, || {
                let mut c = client.clone();
                let req = commit.clone();
                async move { c.complete(req).await }
            })
            .await;
            let _ = tx.send(committed.map(|_| ()));
        }
    }
}

/// Writes a result part, retrying any store error with backoff (up to 5 s
/// apart) for `config.store_retry` while the lease holds (the heartbeat keeps
/// renewing it meanwhile). `Ok(false)`: the lease was lost first.
async fn write_part(
    config: &WorkerConfig,
    key: &str,
    part: bytes::Bytes,
    (shard, epoch): (i64, i64),
    lost: &Mutex<HashSet<(i64, i64)>>,
) -> Result<bool, jagged_artifacts::ArtifactError> {
    let deadline = Instant::now() + config.store_retry;
    let mut delay = Duration::from_millis(100);
    loop {
        match jagged_artifacts::put(config.store.as_ref(), key, part.clone()).await {
            Ok(()) => return Ok(true),
            Err(_) if lost.lock().unwrap().contains(&(shard, epoch)) => return Ok(false),
            Err(e) if Instant::now() + delay < deadline => {
                tracing::warn!(shard, error = %e, retry_in_ms = delay.as_millis() as u64, "the store did not take the result part; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reports a failed attempt (requeued with backoff, or failed for good after
/// the sweep's attempts).
async fn report_failure(
    client: &Client,
    url: &str,
    worker_id: i64,
    lease: Lease,
    failure: Failure,
    stop: &AtomicBool,
    busy_seconds: f64,
) -> Result<(), ReportError> {
    let shard = lease.shard;
    tracing::warn!(shard, error = %failure.message, retryable = failure.retryable, "shard failed");
    let req = FailRequest {
        worker_id,
        shard_id: shard,
        lease_epoch: lease.epoch,
        error: failure.message,
        retryable: failure.retryable,
        handed_back: false,
        busy_seconds,
    };
    let reported = retry("fail", url, stop, || {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.fail(req).await }
    })
    .await;
    if let Err(s) = reported {
        // A stale lease needs no report; anything else is left to the reaper.
        tracing::warn!(shard, error = %s.message(), "failure report refused");
    }
    Ok(())
}

/// A computed shard, with the seconds its part took to write where the
/// compute thread wrote it (a local store).
struct Computed {
    out: ShardOutput,
    /// The encoded part (taken out of `out`) and its SHA-256.
    part: bytes::Bytes,
    sha256: String,
    stored: Option<f64>,
}

/// Each item with its file's bytes (a sequence: each frame's), or why it is
/// missing (a failed item); any other store error fails the attempt.
async fn fetch_images(
    store: &dyn ObjectStore,
    task: &ShardTask,
) -> Result<Vec<(jagged_domain::task::TaskItem, Result<Vec<bytes::Bytes>, String>)>, Failure> {
    // Fetched concurrently (a remote store).
    let fetches = task.items.iter().map(|item| {
        let img = &item.image;
        let keys = if img.frames.is_empty() { vec![img.key.clone()] } else { img.frames.clone() };
        async move {
            let gets = keys.iter().map(|k| jagged_artifacts::get(store, k));
            futures::future::join_all(gets).await.into_iter().collect::<Result<Vec<_>, _>>()
        }
    });
    let fetched = futures::future::join_all(fetches).await;
    let mut images = Vec::with_capacity(task.items.len());
    for (item, bytes) in task.items.iter().zip(fetched) {
        let bytes = match bytes {
            Ok(b) => Ok(b),
            Err(jagged_artifacts::ArtifactError::Store(object_store::Error::NotFound { .. })) => {
                Err(if item.image.frames.is_empty() { "image missing from the store" } else { "a frame is missing from the store" }.to_string())
            }
            Err(e) => return Err(Failure { message: format!("image `{}`: {e}", item.image.name), retryable: true }),
        };
        images.push((item.clone(), bytes));
    }
    Ok(images)
}

/// The rows a widened shard takes from its earlier grid's committed parts,
/// each checked against its checksum; `None` (with a warning: the whole grid
/// then runs, as for a shard that was never widened) when a part is missing,
/// altered or unreadable, or the two grids no longer match.
async fn fetch_taken(store: &dyn ObjectStore, task: &ShardTask) -> Option<run::Taken> {
    let widen = task.widen.as_ref()?;
    let warn = |why: String| tracing::warn!(shard = task.shard_id, "running the whole grid: {why}");
    let Some(widening) = task.family.widening_of(&widen.family) else {
        warn("the earlier grid has no rows this one can take".into());
        return None;
    };
    let wanted: std::collections::HashSet<u32> = task.items.iter().map(|i| i.index).collect();
    let mut rows: std::collections::HashMap<u32, Vec<jagged_artifacts::ResultRow>> = Default::default();
    let gets = widen.parts.iter().map(|(key, _)| jagged_artifacts::get(store, key));
    for ((key, sha256), got) in widen.parts.iter().zip(futures::future::join_all(gets).await) {
        let bytes = match got {
            Ok(b) => b,
            Err(e) => {
                warn(format!("earlier part `{key}`: {e}"));
                return None;
            }
        };
        if jagged_artifacts::sha256_hex(&bytes) != *sha256 {
            warn(format!("earlier part `{key}` does not match its checksum"));
            return None;
        }
        match jagged_artifacts::decode(bytes) {
            Ok(decoded) => {
                for r in decoded.into_iter().filter(|r| wanted.contains(&(r.image_index as u32))) {
                    rows.entry(r.image_index as u32).or_default().push(r);
                }
            }
            Err(e) => {
                warn(format!("earlier part `{key}`: {e}"));
                return None;
            }
        }
    }
    Some(run::Taken { widening, old_points: widen.family.points(), rows })
}

/// Why a shard attempt failed.
struct Failure {
    message: String,
    retryable: bool,
}

async fn execute(
    config: &WorkerConfig,
    task: ShardTask,
    engines: &Engines,
    lost: &Lost,
    hand_back: &Arc<AtomicBool>,
    busy: Arc<Busy>,
) -> Result<Option<Computed>, Failure> {
    let retryable = |m: String| Failure { message: m, retryable: true };
    let fetching = Instant::now();
    // A `layers` sweep runs the model with its probes exposed: a separate engine.
    let layered = matches!(task.family, jagged_domain::transform::Family::Layers { .. });
    // So do rotation and sub-pixel grids rendered in the graph (another
    // rendering in front).
    let rendering = if matches!(task.family, jagged_domain::transform::Family::Rotate { .. }) {
        jagged_infer::Rendering::Turns
    } else if task.family.points().iter().any(|p| p.is_subpixel()) {
        jagged_infer::Rendering::Shifts
    } else {
        jagged_infer::Rendering::Windows
    };
    let graph_render = config.render.in_graph(config.engine.device, rendering);
    let engine_key = match (layered, rendering, graph_render) {
        (true, _, _) => format!("{}#layers", task.model.key),
        (false, jagged_infer::Rendering::Turns, true) => format!("{}#turns", task.model.key),
        (false, jagged_infer::Rendering::Shifts, true) => format!("{}#shifts", task.model.key),
        _ => task.model.key.clone(),
    };
    let model_bytes = if engines.loaded.lock().unwrap().contains(&engine_key) {
        None
    } else {
        Some(
            jagged_artifacts::get(config.store.as_ref(), &task.model.key)
                .await
                .map_err(|e| retryable(format!("model `{}`: {e}", task.model.name)))?,
        )
    };
    // The shard's images (or each sequence's frames); a local store's are read
    // on the compute thread, with no thread between.
    let local = jagged_artifacts::is_local(config.store.as_ref());
    let folder = jagged_artifacts::local_folder(config.store.as_ref());
    let images = if local { None } else { Some(fetch_images(config.store.as_ref(), &task).await?) };
    let taken = fetch_taken(config.store.as_ref(), &task).await;
    let fetch_secs = fetching.elapsed().as_secs_f64();
    let engines = engines.clone();
    let lost = lost.clone();
    let hand_back = hand_back.clone();
    let metrics = config.metrics.clone();
    let device = config.engine.device.to_string();
    let opts = config.engine.clone();
    let host_threads = config.host_threads;
    let (shard_id, epoch) = (task.shard_id, task.lease_epoch);
    let store = config.store.clone();
    let part_key = jagged_artifacts::part_key(task.sweep_id, shard_id, task.attempt, epoch);
    let compute = engines.clone();
    compute.compute.run(move || {
        let (images, fetch_secs) = match images {
            Some(images) => (images, fetch_secs),
            None => {
                let reading = Instant::now();
                // Outside the runtime a local store reads on this thread.
                let images = futures::executor::block_on(fetch_images(store.as_ref(), &task))?;
                (images, fetch_secs + reading.elapsed().as_secs_f64())
            }
        };
        let cache = engines;
        let mut engines = cache.engines.lock().unwrap();
        if let Some(bytes) = model_bytes {
            // Retried like any failure (bounded by the sweep's max_attempts): another
            // worker may load what this one cannot (a device, a library).
            let engine = if layered {
                // Not retryable: every worker would find the same graph.
                let fatal = |m: String| Failure { message: format!("model `{}`: {m}", task.model.name), retryable: false };
                let probes = jagged_onnx::inspect::probes(&bytes).map_err(|e| fatal(e.to_string()))?;
                if probes.is_empty() {
                    return Err(fatal("the graph has no subsampling op or global pooling for a layers sweep to measure".into()));
                }
                let tensors: Vec<String> = probes.iter().map(|p| p.tensor.clone()).collect();
                let exposed = jagged_onnx::antialias::expose(&bytes, &tensors).map_err(|e| fatal(e.to_string()))?;
                let mut engine = Engine::load(&exposed, &task.model.card, &opts).map_err(|e| retryable(e.to_string()))?;
                engine.probes = probes;
                engine
            } else {
                let mut engine = Engine::load(&bytes, &task.model.card, &opts).map_err(|e| retryable(e.to_string()))?;
                if graph_render {
                    // A model the rendering cannot be put in front of runs as it is.
                    use jagged_infer::Rendering;
                    let card = &task.model.card;
                    let prepended = match rendering {
                        Rendering::Windows => jagged_onnx::views::prepend(&bytes, card),
                        Rendering::Turns => jagged_onnx::views::prepend_turns(&bytes, card),
                        Rendering::Shifts => jagged_onnx::views::prepend_shifts(&bytes, card),
                    };
                    let attached = prepended.map(|v| engine.attach(rendering, &v, &opts));
                    let attached = attached.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
                    let what = match rendering {
                        Rendering::Windows => "grids of plain windows",
                        Rendering::Turns => "rotations",
                        Rendering::Shifts => "sub-pixel windows",
                    };
                    match attached {
                        Ok(()) => tracing::info!(model = %task.model.name, "{what} render inside the model's graph"),
                        Err(e) => tracing::warn!(model = %task.model.name, error = %e, "rendering {what} on the host: the graph cannot render"),
                    }
                }
                engine
            };
            if engine.provider != "cpu" {
                if engine.pinned_staging() {
                    tracing::info!(model = %task.model.name, "inputs are staged in page-locked host memory and handed over by I/O binding");
                } else {
                    tracing::warn!(model = %task.model.name, "no pinned host allocator from the execution provider: inputs are staged in pageable memory");
                }
            }
            metrics.model_loads.get_or_create(&metrics::DeviceLabel { device: device.clone(), provider: engine.provider.into() }).inc();
            if engines.len() >= MAX_ENGINES {
                // Make room by dropping the model used least recently.
                let oldest = engines.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
                oldest.map(|k| engines.remove(&k));
            }
            engines.insert(engine_key.clone(), (engine, 0));
            *cache.loaded.lock().unwrap() = engines.keys().cloned().collect();
        }
        let (engine, used) = engines.get_mut(&engine_key).expect("inserted above");
        *used = ENGINE_CLOCK.fetch_add(1, Ordering::Relaxed);
        let pad_batches = pads_batches(engine.provider);
        let input = ShardInput { task: &task, images, host_threads, pad_batches, busy: Some(&busy), graph_render, taken };
        let abandoned = || hand_back.load(Ordering::Relaxed) || lost.lock().unwrap().contains(&(shard_id, epoch));
        let out = run_shard(engine, input, &abandoned).map_err(|e| retryable(e.to_string()))?;
        drop(engines);
        Ok(out.map(|mut out| {
            out.timing.fetch_secs = fetch_secs;
            let part = bytes::Bytes::from(std::mem::take(&mut out.part));
            let sha256 = jagged_artifacts::sha256_hex(&part);
            // A local store's folder takes the part here, on this thread; where it
            // does not, the worker's writer retries it as for any store.
            let stored = folder.as_deref().and_then(|folder| {
                let writing = Instant::now();
                jagged_artifacts::put_local(folder, &part_key, &part).ok().map(|()| writing.elapsed().as_secs_f64())
            });
            Computed { out, part, sha256, stored }
        }))
    })
    .await
    .map_err(|e| retryable(format!("worker thread: {e}")))?
}
