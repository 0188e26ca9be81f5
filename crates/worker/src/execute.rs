//! Executing a shard: fetch what it needs, then compute it on the compute
//! thread with the engine for its model (loaded there first if need be),
//! and, for a local store, write its part there too.

use crate::compute::{pads_batches, run_shard, Busy, ShardInput, ShardOutput, Taken};
use crate::engines::{self, engine_key, Engines, Way};
use crate::failure::{retryable, Failure};
use crate::heartbeat::Lost;
use crate::WorkerConfig;
use jagged_domain::task::ShardTask;
use jagged_domain::transform::InGraph;
use jagged_infer::Rendering;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A computed shard, with the seconds its part took to write where the
/// compute thread wrote it (a local store).
pub(crate) struct Computed {
    pub out: ShardOutput,
    /// The encoded part (taken out of `out`) and its SHA-256.
    pub part: bytes::Bytes,
    pub sha256: String,
    pub stored: Option<f64>,
}

/// How a worker runs a shard's model, and whether its inputs render in the
/// graph: a family that needs its probes with them exposed; one whose inputs
/// the graph can draw with that rendering in front where the worker's
/// `--render` puts them in the graph; any other as it is.
fn way_of(config: &WorkerConfig, task: &ShardTask) -> (Way, bool) {
    if task.family.probes() {
        return (Way::Layers, false);
    }
    let rendering = match task.family.in_graph() {
        Some(InGraph::Windows) => Rendering::Windows,
        Some(InGraph::Turns) => Rendering::Turns,
        Some(InGraph::Shifts) => Rendering::Shifts,
        None => return (Way::Plain, false),
    };
    let in_graph = config.render.in_graph(config.engine.device, rendering);
    (if in_graph { Way::Rendered(rendering) } else { Way::Plain }, in_graph)
}

/// Fetches a shard's model (unless loaded), items (unless a local store's,
/// read on the compute thread) and a widened grid's earlier rows, then
/// computes it. `Ok(None)`: abandoned (the lease was lost, or the worker
/// hands the shard back).
pub(crate) async fn execute(
    config: &WorkerConfig,
    task: ShardTask,
    engines: &Engines,
    lost: &Lost,
    hand_back: &Arc<AtomicBool>,
    busy: Arc<Busy>,
) -> Result<Option<Computed>, Failure> {
    let fetching = Instant::now();
    let (way, graph_render) = way_of(config, &task);
    let key = engine_key(&task.model.key, way);
    let model_bytes = if engines.has(&key) {
        None
    } else {
        let bytes = jagged_artifacts::get(config.store.as_ref(), &task.model.key).await;
        Some(bytes.map_err(|e| retryable(format!("model `{}`: {e}", task.model.name)))?)
    };
    // The shard's images (or each sequence's frames); a local store's are read
    // on the compute thread, with no thread between.
    let local = jagged_artifacts::is_local(config.store.as_ref());
    let images = if local { None } else { Some(crate::fetch::images(config.store.as_ref(), &task).await?) };
    let taken = crate::fetch::taken(config.store.as_ref(), &task).await;
    let job = Job {
        config: config.clone(),
        task,
        engines: engines.clone(),
        key,
        way,
        graph_render,
        model_bytes,
        images,
        taken,
        fetch_secs: fetching.elapsed().as_secs_f64(),
        lost: lost.clone(),
        hand_back: hand_back.clone(),
        busy,
    };
    engines.compute.run(move || job.run()).await.map_err(|e| retryable(format!("worker thread: {e}")))?
}

/// A shard ready to compute, with everything fetched for it.
struct Job {
    config: WorkerConfig,
    task: ShardTask,
    engines: Engines,
    /// The engine's key in the cache, and how it runs the model.
    key: String,
    way: Way,
    graph_render: bool,
    /// The model's bytes, when its engine is not loaded yet.
    model_bytes: Option<bytes::Bytes>,
    /// The items' files, unless a local store's (read here).
    images: Option<crate::compute::Fetched>,
    taken: Option<Taken>,
    fetch_secs: f64,
    lost: Lost,
    hand_back: Arc<AtomicBool>,
    busy: Arc<Busy>,
}

impl Job {
    /// Computes the shard on this (the compute) thread.
    fn run(self) -> Result<Option<Computed>, Failure> {
        let Job { config, task, engines: cache, key, way, graph_render, model_bytes, images, taken, mut fetch_secs, lost, hand_back, busy } = self;
        let images = match images {
            Some(images) => images,
            None => {
                let reading = Instant::now();
                // Outside the runtime a local store reads on this thread.
                let images = futures::executor::block_on(crate::fetch::images(config.store.as_ref(), &task))?;
                fetch_secs += reading.elapsed().as_secs_f64();
                images
            }
        };
        let mut engines = cache.lock();
        if let Some(bytes) = model_bytes {
            let engine = engines::load(&bytes, &task.model, &config.engine, way)?;
            engines::log_staging(&engine, &task.model.name);
            let device = config.engine.device.to_string();
            config.metrics.model_loads.get_or_create(&crate::metrics::DeviceLabel { device, provider: engine.provider.into() }).inc();
            cache.insert(&mut engines, key.clone(), engine);
        }
        let engine = engines::take(&mut engines, &key);
        let pad_batches = pads_batches(engine.provider);
        let input = ShardInput { task: &task, images, host_threads: config.host_threads, pad_batches, busy: Some(&busy), graph_render, taken };
        let (shard_id, epoch) = (task.shard_id, task.lease_epoch);
        let abandoned = || hand_back.load(Ordering::Relaxed) || lost.lock().unwrap().contains(&(shard_id, epoch));
        let out = run_shard(engine, input, &abandoned).map_err(|e| retryable(e.to_string()))?;
        drop(engines);
        let Some(mut out) = out else { return Ok(None) };
        out.timing.fetch_secs = fetch_secs;
        let part = bytes::Bytes::from(std::mem::take(&mut out.part));
        let sha256 = jagged_artifacts::sha256_hex(&part);
        // A local store's folder takes the part here, on this thread; where it
        // does not, the worker's writer retries it as for any store.
        let part_key = jagged_artifacts::part_key(task.sweep_id, shard_id, task.attempt, epoch);
        let stored = jagged_artifacts::local_folder(config.store.as_ref()).and_then(|folder| {
            let writing = Instant::now();
            jagged_artifacts::put_local(&folder, &part_key, &part).ok().map(|()| writing.elapsed().as_secs_f64())
        });
        Ok(Some(Computed { out, part, sha256, stored }))
    }
}
