//! The compute step of a shard, on one thread: decode and prepare each item
//! once ([`prepare`]), plan which points to infer in which batches ([`Plan`]),
//! infer them (in the model's graph, [`graph`]; with probes exposed,
//! [`layers`]; or rendered on host threads, [`batches`]), then measure each
//! image and write the result rows ([`rows`]) and encode the part.

mod batches;
mod graph;
mod layers;
mod prepare;
mod rows;

use jagged_artifacts::ResultRow;
use jagged_domain::metrics::equivariance::LayerError;
use jagged_domain::task::{FailedItem, ShardTask, TaskItem};
use jagged_domain::transform::{GridPoint, Prepared};
use jagged_infer::Engine;
use std::collections::HashMap;
use std::time::Instant;

pub use batches::Busy;
pub use rows::Taken;

/// Why the compute step stopped (the shard is retried).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// ONNX Runtime failed on a batch.
    #[error("running the model: {0}")]
    Model(#[source] jagged_infer::InferError),
    /// The result part could not be encoded.
    #[error("encoding the result part: {0}")]
    Encode(#[source] jagged_artifacts::ArtifactError),
    /// The thread rendering batches ahead stopped early.
    #[error("the render thread stopped")]
    RenderStopped,
}

/// What the compute step needs.
pub struct ShardInput<'a> {
    /// The leased shard (its model, family and items).
    pub task: &'a ShardTask,
    /// Each item with its file's bytes (a sequence: each frame's, in order), or
    /// why they could not be fetched.
    pub images: Fetched,
    /// Threads for host work (decoding, rendering, metrics) beside ONNX Runtime's;
    /// 0: render inline on the calling thread between runs.
    pub host_threads: usize,
    /// Give every `session.run` the full batch, padding the last one (see
    /// [`pads_batches`]).
    pub pad_batches: bool,
    /// Where the attempt's busy time so far is kept, batch by batch, for
    /// heartbeats to report (cost accounting of an attempt that never ends).
    pub busy: Option<&'a Busy>,
    /// Render the grid inside the model's graph, on its device, where the engine
    /// has the rendering session ([`Engine::attach`]) and every point of
    /// the shard is a plain window ([`Prepared::view`]); otherwise on the host.
    pub graph_render: bool,
    /// A widened grid: the earlier grid's rows to take as they are.
    pub taken: Option<Taken>,
}

/// Each item of a shard with its files' bytes (a sequence: each frame's, in
/// order), or why they could not be fetched.
pub type Fetched = Vec<(TaskItem, Result<Vec<bytes::Bytes>, String>)>;

/// Whether runs on an execution provider should always see the full batch: on
/// CUDA a new input shape makes ONNX Runtime re-plan (cuDNN algorithm search),
/// which costs far more than computing a padded tail (measured on an H200 with
/// EfficientNet-Lite0: 0.13 of bare `session.run` throughput with a short last
/// batch per shard, 0.64 with padding).
pub fn pads_batches(provider: &str) -> bool {
    provider == "cuda"
}

/// Where the compute step's time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// Decoding and preparing the items.
    pub prepare_secs: f64,
    /// Inside ONNX Runtime `session.run` (and softmax).
    pub run_secs: f64,
    /// Waiting for a rendered batch (rendering did not keep up).
    pub starved_secs: f64,
    /// Metrics, result rows and Parquet encoding.
    pub finish_secs: f64,
    /// Reading the model and the items from the object store (set by the worker).
    pub fetch_secs: f64,
    /// Bytes handed to ONNX Runtime as model input (rendered tensors, or pixels
    /// and views when the graph renders).
    pub input_bytes: u64,
    /// Inputs run (padding included).
    pub inputs: u64,
}

/// What the compute step produces.
pub struct ShardOutput {
    /// The encoded Parquet part.
    pub part: Vec<u8>,
    /// Rows in it.
    pub rows: usize,
    /// Items that failed, with reasons.
    pub failed: Vec<FailedItem>,
    /// Execution provider.
    pub provider: &'static str,
    /// Numeric precision of the rows (`fp32`, `tf32`).
    pub precision: String,
    /// Where the time went.
    pub timing: Timing,
    /// Where the inputs were rendered: `host`, or `graph` (by ONNX Runtime,
    /// inside the model's graph, on its device).
    pub render: &'static str,
    /// An adaptive shard's items whose top-1 has not changed, with their
    /// reference class: the next ring's images (empty at the last ring).
    pub next_ring: Vec<(u32, u32)>,
    /// Inputs inferred (padding aside); fewer than the rows where a widened
    /// grid took rows, or an adaptive ring ran the reference again.
    pub inferences: usize,
    /// Rows taken from an earlier grid.
    pub taken: usize,
}

/// Each item's probability vectors, in its points' order (a point whose
/// output is not finite: why).
pub(crate) type Probs = Vec<Vec<Result<Vec<f32>, String>>>;

/// Which points of which items a shard infers, in what order and batches.
pub(crate) struct Plan<'a> {
    /// The pairs and reference point of an item that runs its whole grid.
    pub pairs: Vec<(usize, usize)>,
    pub reference: usize,
    /// Each item's earlier rows, where a widened grid takes them.
    pub taken_rows: Vec<Option<Vec<&'a ResultRow>>>,
    /// Each item's points to infer.
    pub points: Vec<Vec<GridPoint>>,
    /// A widened item's pairs and reference among its inferred points.
    pub local: Option<Local>,
    /// Every (item, point) to infer, in order, batched across items.
    pub work: Vec<(usize, usize)>,
    /// Inputs per run.
    pub batch: usize,
    /// Every run gets the full batch (padded with stale inputs whose outputs
    /// are dropped).
    pub fixed: bool,
}

impl<'a> Plan<'a> {
    fn new(task: &ShardTask, prepared: &[(TaskItem, Prepared)], taken: Option<&'a Taken>, side: u32, pad_batches: bool) -> Plan<'a> {
        let fam = &task.family;
        // An adaptive shard runs the reference and one ring, each point paired
        // with the reference; other shards run every point of the family.
        let (pairs, reference) =
            if task.ring > 0 { ((1..fam.points_per_image(task.ring)).map(|p| (p, 0)).collect(), 0) } else { (fam.pairs(), fam.reference()) };
        let taken_rows: Vec<Option<Vec<&ResultRow>>> = prepared.iter().map(|(item, _)| taken.and_then(|t| t.rows_of(item.index))).collect();
        // Each image's points (the same for all but seeded random draws; a
        // widened item's, those its widening infers).
        let infer = taken.map(|t| &t.widening.infer);
        let points: Vec<Vec<GridPoint>> = prepared
            .iter()
            .zip(&taken_rows)
            .map(|((item, _), rows)| {
                let all = fam.shard_points(item.index, side, task.ring);
                match (rows, infer) {
                    (Some(_), Some(infer)) => infer.iter().map(|&p| all[p]).collect(),
                    _ => all,
                }
            })
            .collect();
        // The pairs whose first point is written anew, in the family's order.
        let local = taken.map(|t| {
            let at: HashMap<usize, usize> = t.widening.infer.iter().enumerate().map(|(k, &p)| (p, k)).collect();
            let written = &t.widening.reused;
            let local_pairs: Vec<(usize, usize)> = pairs.iter().filter(|(a, _)| written[*a].is_none()).map(|(a, b)| (at[a], at[b])).collect();
            Local { pairs: local_pairs, reference: at[&reference], at }
        });
        let work: Vec<(usize, usize)> = (0..prepared.len()).flat_map(|i| (0..points[i].len()).map(move |p| (i, p))).collect();
        let batch = task.batch_size.max(1) as usize;
        let batch = if pad_batches { batch } else { batch.min(work.len().max(1)) };
        Plan { pairs, reference, taken_rows, points, local, work, batch, fixed: pad_batches }
    }
}

/// A widened item's pairs and reference among its inferred points, and
/// where each inferred grid point sits among them.
pub(crate) struct Local {
    pub pairs: Vec<(usize, usize)>,
    pub reference: usize,
    pub at: HashMap<usize, usize>,
}

/// What inference gave: each item's probabilities, a `layers` shard's
/// per-probe errors, and where the inputs were rendered.
struct Inferred {
    probs: Probs,
    layer_errors: Vec<Vec<Option<Vec<LayerError>>>>,
    render: &'static str,
}

/// Runs a shard on `engine`. Returns `Ok(None)` when `abandoned()` turns true
/// (the lease was lost) before it finishes.
///
/// Host work is spread over `host_threads` threads and overlapped with inference:
/// a render thread fills batch tensors (each batch's points split over the host
/// threads) a few batches ahead, through a bounded channel, while this thread
/// runs ONNX Runtime on the previous ones; tensors are recycled.
pub fn run_shard(engine: &mut Engine, input: ShardInput<'_>, abandoned: &(dyn Fn() -> bool + Sync)) -> Result<Option<ShardOutput>, RunError> {
    let task = input.task;
    let card = engine.card().clone();
    let host = input.host_threads.max(1);
    let mut timing = Timing::default();
    let started = Instant::now();
    let (prepared, mut failed) = prepare::items(task, &input.images, host, card.input_size);
    timing.prepare_secs = started.elapsed().as_secs_f64();
    let plan = Plan::new(task, &prepared, input.taken.as_ref(), card.input_size, input.pad_batches);
    let Some(inferred) = infer(engine, &input, &prepared, &plan, abandoned, &mut timing)? else { return Ok(None) };
    let finishing = Instant::now();
    let measured = rows::measure(&prepared, &plan, &inferred.probs, host);
    let mut out = rows::Rows::new(task, engine, inferred.render);
    out.write(&prepared, &plan, &inferred, measured, input.taken.as_ref(), &mut failed);
    failed.sort_by_key(|f| f.index);
    let part = jagged_artifacts::encode(&out.rows).map_err(RunError::Encode)?;
    timing.finish_secs = finishing.elapsed().as_secs_f64();
    Ok(Some(ShardOutput {
        part,
        rows: out.rows.len(),
        failed,
        provider: engine.provider,
        precision: engine.precision.to_string(),
        timing,
        render: inferred.render,
        next_ring: out.next_ring,
        inferences: plan.work.len(),
        taken: out.taken,
    }))
}

/// Infers every input of the plan: in the model's graph where the shard's
/// points allow it, with the probes exposed for a `layers` shard, else
/// rendered on the host (inline, or on threads ahead of the runs). `None`
/// when abandoned.
fn infer(
    engine: &mut Engine,
    input: &ShardInput<'_>,
    prepared: &[(TaskItem, Prepared)],
    plan: &Plan<'_>,
    abandoned: &(dyn Fn() -> bool + Sync),
    timing: &mut Timing,
) -> Result<Option<Inferred>, RunError> {
    let mut probs: Probs = plan.points.iter().map(|p| Vec::with_capacity(p.len())).collect();
    let mut layer_errors = Vec::new();
    let norm = engine.card().normalize;
    let mut meter = batches::Meter { timing, busy: input.busy };
    let layered = input.task.family.probes();
    let graph = (input.graph_render && !layered).then(|| graph::inputs(engine, prepared, plan, &norm)).flatten();
    let render = if graph.is_some() { "graph" } else { "host" };
    let finished = if let Some(g) = &graph {
        graph::run(engine, g, plan, abandoned, &mut probs, &mut meter)?
    } else if layered {
        layers::run(engine, prepared, plan, norm, abandoned, &mut probs, &mut layer_errors, &mut meter)?
    } else if input.host_threads == 0 || plan.work.len() <= plan.batch {
        // Inline: when ONNX Runtime's threads already take every core,
        // overlapping would only oversubscribe; with one batch there is nothing
        // to overlap, and a thread started for it would cost more than a small
        // shard's rendering.
        batches::inline(engine, prepared, plan, norm, abandoned, &mut probs, &mut meter)?
    } else {
        batches::pipelined(engine, prepared, plan, input.host_threads.max(1), norm, abandoned, &mut probs, &mut meter)?
    };
    Ok(finished.then_some(Inferred { probs, layer_errors, render }))
}
