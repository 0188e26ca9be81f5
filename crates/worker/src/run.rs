//! The compute step of a shard: decode, render, infer, measure, encode.

use bytes::Bytes;
use jagged_artifacts::ResultRow;
use jagged_domain::metrics::equivariance::{probe_error, LayerError};
use jagged_domain::metrics::{image_outcomes, PointOutcome};
use jagged_domain::task::{FailedItem, ShardTask, TaskItem};
use jagged_domain::transform::{Family, GridPoint, Prepared, Widening};
use jagged_infer::{Engine, PerInput, Rendering, Staging};
use std::collections::HashMap;

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
    pub images: Vec<(TaskItem, Result<Vec<Bytes>, String>)>,
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

/// The rows a widened shard takes from an earlier grid of its family
/// ([`Family::widening_of`]): an item whose earlier rows are all here infers
/// only the points the widening names; any other item runs its whole grid.
pub struct Taken {
    /// Which rows the shard's grid takes, and which points it infers.
    pub widening: Widening,
    /// The earlier grid's points.
    pub old_points: Vec<GridPoint>,
    /// Each item's earlier rows by its index in the sweep, in any order.
    pub rows: HashMap<u32, Vec<ResultRow>>,
}

impl Taken {
    /// An item's earlier rows in point order, when there is exactly one for
    /// every point of the earlier grid and each lies where its point does.
    fn rows_of(&self, item: u32) -> Option<Vec<&ResultRow>> {
        let rows = self.rows.get(&item)?;
        let mut by_point: Vec<Option<&ResultRow>> = vec![None; self.old_points.len()];
        for r in rows {
            let slot = by_point.get_mut(usize::try_from(r.point).ok()?)?;
            if slot.replace(r).is_some() {
                return None;
            }
        }
        let placed =
            |r: &ResultRow, p: &GridPoint| [r.dx, r.dy, r.scale, r.angle].map(f32::to_bits) == [p.dx, p.dy, p.scale, p.angle].map(f32::to_bits);
        by_point.into_iter().zip(&self.old_points).map(|(r, p)| r.filter(|r| placed(r, p))).collect()
    }
}

/// Seconds an execution provider has been busy on one attempt, updated as it
/// runs and read from other threads.
#[derive(Debug, Default)]
pub struct Busy(std::sync::atomic::AtomicU64);

impl Busy {
    /// Adds `secs`.
    pub fn add(&self, secs: f64) {
        self.0.fetch_add((secs * 1e9) as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The seconds so far.
    pub fn seconds(&self) -> f64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }
}

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

/// Batches rendered ahead of the one being inferred.
const AHEAD: usize = 2;

/// Runs `f` on each element of `items` on up to `threads` scoped threads
/// (contiguous slices, in order), returning the results in order.
fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("host thread panicked")).collect()
    })
}

/// Runs a shard on `engine`. Returns `Ok(None)` when `abandoned()` turns true
/// (the lease was lost) before it finishes.
///
/// Host work is spread over `host_threads` threads and overlapped with inference:
/// a render thread fills batch tensors (each batch's points split over the host
/// threads) up to [`AHEAD`] batches ahead, through a bounded channel, while this
/// thread runs ONNX Runtime on the previous ones; tensors are recycled.
pub fn run_shard(engine: &mut Engine, input: ShardInput<'_>, abandoned: &(dyn Fn() -> bool + Sync)) -> Result<Option<ShardOutput>, RunError> {
    let task = input.task;
    let input_busy = input.busy;
    let fam = &task.family;
    let card = engine.card().clone();
    let side = card.input_size as usize;
    let plane = 3 * side * side;
    // An adaptive shard runs the reference and one ring, each point paired with
    // the reference; other shards run every point of the family.
    let adaptive = task.ring > 0;
    let (pairs, reference) =
        if adaptive { ((1..fam.points_per_image(task.ring)).map(|p| (p, 0)).collect(), 0) } else { (fam.pairs(), fam.reference()) };
    let host = input.host_threads.max(1);
    let mut failed = Vec::new();
    let mut timing = Timing::default();
    let t0 = std::time::Instant::now();

    // Decode and prepare each item once, in parallel.
    let prepared_all = par_map(&input.images, host, |(item, bytes)| {
        let res = bytes
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|files| {
                let many = files.len() > 1;
                files
                    .iter()
                    .enumerate()
                    .map(|(k, b)| {
                        jagged_infer::decode_image_with(b, task.jpeg_decoder)
                            .map_err(|e| if many { format!("frame {k}: {e}") } else { e.to_string() })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(|imgs| fam.prepare_item(&imgs, card.input_size));
        (item.clone(), res)
    });
    let mut prepared: Vec<(TaskItem, Prepared)> = Vec::new();
    for (item, res) in prepared_all {
        match res {
            Ok(p) => prepared.push((item, p)),
            Err(reason) => failed.push(FailedItem { index: item.index, name: item.image.name.clone(), reason }),
        }
    }
    timing.prepare_secs = t0.elapsed().as_secs_f64();

    // A widened grid: each item with its earlier rows, or none (its whole grid runs).
    let taken_rows: Vec<Option<Vec<&ResultRow>>> =
        prepared.iter().map(|(item, _)| input.taken.as_ref().and_then(|t| t.rows_of(item.index))).collect();
    // Each image's points (the same for all but seeded random draws; a widened
    // item's, those its widening infers), then every (image, point) in order,
    // batched across images.
    let infer = input.taken.as_ref().map(|t| &t.widening.infer);
    let points: Vec<Vec<GridPoint>> = prepared
        .iter()
        .zip(&taken_rows)
        .map(|((item, _), taken)| {
            let all = fam.shard_points(item.index, card.input_size, task.ring);
            match (taken, infer) {
                (Some(_), Some(infer)) => infer.iter().map(|&p| all[p]).collect(),
                _ => all,
            }
        })
        .collect();
    // A widened item's pairs and reference among its inferred points: the pairs
    // whose first point is written anew, in the family's order.
    let local = infer.map(|infer| {
        let at: HashMap<usize, usize> = infer.iter().enumerate().map(|(k, &p)| (p, k)).collect();
        let written = input.taken.as_ref().map(|t| &t.widening.reused).expect("with `infer`");
        let local_pairs: Vec<(usize, usize)> = pairs.iter().filter(|(a, _)| written[*a].is_none()).map(|(a, b)| (at[a], at[b])).collect();
        (local_pairs, at[&reference], at)
    });
    let work: Vec<(usize, usize)> = (0..prepared.len()).flat_map(|i| (0..points[i].len()).map(move |p| (i, p))).collect();
    // Padded runs get the full batch; the tail's extra slots hold stale inputs whose
    // outputs are dropped.
    let fixed = input.pad_batches;
    let batch = if fixed { task.batch_size.max(1) as usize } else { (task.batch_size.max(1) as usize).min(work.len().max(1)) };
    let mut probs: Vec<Vec<Result<Vec<f32>, String>>> = points.iter().map(|p| Vec::with_capacity(p.len())).collect();
    let norm = card.normalize;
    let mut layer_errors: Vec<Vec<Option<Vec<LayerError>>>> = Vec::new();
    // In the graph only where every input of the shard is a plain window (on
    // one background), or every one a turn, or every one a resampled window.
    let layers = matches!(fam, Family::Layers { .. });
    let windows = (input.graph_render && engine.renders(Rendering::Windows) && !layers)
        .then(|| work.iter().map(|&(i, p)| prepared[i].1.view(points[i][p], &norm)).collect::<Option<Vec<_>>>())
        .flatten()
        .filter(|v| v.windows(2).all(|w| w[0].background == w[1].background))
        .map(|v| {
            let background = v.first().map(|v| v.background).unwrap_or_default();
            let inputs = v.iter().map(|v| GraphInput { image: v.image, x0: v.x0, y0: v.y0, turn: [0.0; 2], taps: NO_TAPS }).collect::<Vec<_>>();
            (Rendering::Windows, inputs, background)
        });
    let turns = || {
        (input.graph_render && engine.renders(Rendering::Turns) && !layers)
            .then(|| work.iter().map(|&(i, p)| prepared[i].1.turn(points[i][p])).collect::<Option<Vec<_>>>())
            .flatten()
            .map(|t| {
                let inputs = t.iter().map(|t| GraphInput { image: t.image, x0: 0, y0: 0, turn: [t.sin, t.cos], taps: NO_TAPS }).collect::<Vec<_>>();
                (Rendering::Turns, inputs, [0.0; 3])
            })
    };
    let shifts = || {
        (input.graph_render && engine.renders(Rendering::Shifts) && !layers)
            .then(|| work.iter().map(|&(i, p)| prepared[i].1.shift(points[i][p])).collect::<Option<Vec<_>>>())
            .flatten()
            .map(|v| {
                let inputs = v
                    .iter()
                    .map(|s| GraphInput { image: s.image, x0: s.first[0], y0: s.first[1], turn: [0.0; 2], taps: s.weights })
                    .collect::<Vec<_>>();
                (Rendering::Shifts, inputs, [0.0; 3])
            })
    };
    let graph = windows.or_else(turns).or_else(shifts);
    let render = if graph.is_some() { "graph" } else { "host" };
    let outcome: Result<bool, RunError> = if let Some((rendering, inputs, background)) = &graph {
        in_graph(engine, *rendering, inputs, *background, &work, batch, fixed, abandoned, &mut probs, &mut timing, input_busy)
    } else if matches!(fam, Family::Layers { .. }) {
        layered(engine, &prepared, &points, reference, norm, abandoned, &mut probs, &mut layer_errors, &mut timing, input_busy)
    } else if input.host_threads == 0 || work.len() <= batch {
        // Inline: render each batch on this thread, then run it (when ONNX Runtime's
        // threads already take every core, overlapping would only oversubscribe;
        // with one batch there is nothing to overlap, and a thread started for it
        // would cost more than a small shard's rendering).
        let mut tensor = engine.staging(batch).map_err(RunError::Model)?;
        let mut finished = true;
        for chunk in work.chunks(batch) {
            if abandoned() {
                finished = false;
                break;
            }
            let render = std::time::Instant::now();
            let data = tensor.data_mut();
            for (slot, &(i, p)) in chunk.iter().enumerate() {
                prepared[i].1.write_chw(points[i][p], &norm, &mut data[slot * plane..(slot + 1) * plane]);
            }
            timing.starved_secs += render.elapsed().as_secs_f64();
            let run = std::time::Instant::now();
            let n = if fixed { batch } else { chunk.len() };
            let out = engine.probabilities_staged(&tensor, n).map_err(RunError::Model)?;
            let spent = run.elapsed().as_secs_f64();
            timing.run_secs += spent;
            timing.input_bytes += (n * plane * 4) as u64;
            timing.inputs += n as u64;
            if let Some(b) = input_busy {
                b.add(spent);
            }
            for (&(i, _), row) in chunk.iter().zip(out) {
                probs[i].push(row);
            }
        }
        Ok(finished)
    } else {
        pipelined(engine, &prepared, &points, &work, batch, plane, host, fixed, norm, abandoned, &mut probs, &mut timing, input_busy)
    };
    if !outcome? {
        return Ok(None);
    }
    let t1 = std::time::Instant::now();

    // Per-image metrics on full probability vectors, in parallel.
    let label_of = |item: &TaskItem| item.image.label.filter(|&l| l >= 0).map(|l| l as usize);
    let items: Vec<usize> = (0..prepared.len()).collect();
    let measured = par_map(&items, host, |&i| {
        let vecs: Result<Vec<&[f32]>, String> = probs[i].iter().map(|r| r.as_ref().map(|v| v.as_slice()).map_err(|e| e.clone())).collect();
        let (pairs, reference) = match (&taken_rows[i], &local) {
            (Some(_), Some((pairs, reference, _))) => (pairs, *reference),
            _ => (&pairs, reference),
        };
        vecs.map(|refs| image_outcomes(&refs, pairs, reference, label_of(&prepared[i].0)))
    });
    let mut rows = Vec::with_capacity(work.len());
    let mut next_ring = Vec::new();
    let last_ring = match fam {
        Family::Radius { max_radius, .. } => *max_radius,
        _ => 0,
    };
    let mut taken = 0;
    for (i, (((item, _), probs), (outcomes, points))) in prepared.iter().zip(&probs).zip(measured.into_iter().zip(&points)).enumerate() {
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(reason) => {
                failed.push(FailedItem { index: item.index, name: item.image.name.clone(), reason });
                continue;
            }
        };
        let label = label_of(item);
        // The row of a point computed here, with its outcome.
        let row_of = |point: &GridPoint, is_reference: bool, o: &PointOutcome, probs: Option<Vec<f32>>| ResultRow {
            sweep_id: task.sweep_id,
            shard_id: task.shard_id,
            attempt: task.attempt,
            model: task.model.name.clone(),
            family: fam.name().to_string(),
            family_index: task.family_index as i32,
            image_index: item.index as i32,
            image_name: item.image.name.clone(),
            label: label.map(|l| l as i32),
            point: point.index as i32,
            dx: point.dx,
            dy: point.dy,
            scale: point.scale,
            angle: point.angle,
            is_reference,
            top1: o.argmax as i32,
            top5_class: o.top5.iter().map(|t| t.0 as i32).collect(),
            top5_prob: o.top5.iter().map(|t| t.1).collect(),
            p_label: o.p_label,
            p_ref_top1: o.p_ref_top1,
            fwd_pairs: o.fwd_pairs as i32,
            fwd_top1_changes: o.fwd_top1_changes as i32,
            fwd_abs_diff: o.fwd_abs_diff,
            fwd_top5_transitions: o.fwd_top5_transitions as i32,
            fwd_top5_dist: o.fwd_top5_dist as i32,
            provider: engine.provider.to_string(),
            precision: engine.precision.to_string(),
            render: render.to_string(),
            probs,
            layers: None,
        };
        if adaptive {
            // The class every ring compares with: the first ring's reference.
            let class = item.reference.unwrap_or(outcomes[0].argmax);
            if task.ring < last_ring && outcomes.iter().skip(1).all(|o| o.argmax == class) {
                next_ring.push((item.index, class));
            }
        }
        if let (Some(old), Some(t), Some((_, _, at))) = (&taken_rows[i], &input.taken, &local) {
            // A widened item: the grid's rows in order, each taken as it is or
            // written from this run's outcomes.
            let grid = fam.shard_points(item.index, card.input_size, task.ring);
            for (j, reused) in t.widening.reused.iter().enumerate() {
                match reused {
                    Some(o) => {
                        let mut row = old[*o].clone();
                        (row.sweep_id, row.shard_id, row.attempt) = (task.sweep_id, task.shard_id, task.attempt);
                        (row.model, row.family_index, row.point) = (task.model.name.clone(), task.family_index as i32, grid[j].index as i32);
                        row.is_reference = j == reference;
                        rows.push(row);
                        taken += 1;
                    }
                    None => {
                        let k = at[&j];
                        rows.push(row_of(&grid[j], j == reference, &outcomes[k], task.keep_probs.then(|| probs[k].as_ref().ok().cloned()).flatten()));
                    }
                }
            }
            continue;
        }
        for (p, o) in outcomes.iter().enumerate() {
            // Later rings rerun the reference for their pair metrics; its row was
            // written by the first.
            if adaptive && p == reference && task.ring > 1 {
                continue;
            }
            let layers = layer_errors.get(i).and_then(|l| l.get(p).cloned()).flatten();
            rows.push(ResultRow {
                layers,
                ..row_of(&points[p], p == reference, o, task.keep_probs.then(|| probs[p].as_ref().ok().cloned()).flatten())
            });
        }
    }
    failed.sort_by_key(|f| f.index);
    let part = jagged_artifacts::encode(&rows).map_err(RunError::Encode)?;
    timing.finish_secs = t1.elapsed().as_secs_f64();
    Ok(Some(ShardOutput {
        part,
        rows: rows.len(),
        failed,
        provider: engine.provider,
        precision: engine.precision.to_string(),
        timing,
        render,
        next_ring,
        inferences: work.len(),
        taken,
    }))
}

/// The `layers` path: each image's points in one run with the model's probes
/// exposed (the engine must have been loaded with them), then every probe's
/// error of every point against the reference. Returns `Ok(false)` if abandoned.
#[allow(clippy::too_many_arguments)]
fn layered(
    engine: &mut Engine,
    prepared: &[(TaskItem, Prepared)],
    points: &[Vec<GridPoint>],
    reference: usize,
    norm: jagged_domain::transform::Normalize,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut [Vec<Result<Vec<f32>, String>>],
    errors: &mut Vec<Vec<Option<Vec<LayerError>>>>,
    timing: &mut Timing,
    busy: Option<&Busy>,
) -> Result<bool, RunError> {
    if engine.probes.is_empty() {
        return Err(RunError::Model(jagged_infer::InferError::Run(
            "a layers sweep needs the model's subsampling nodes exposed, and this model has none".into(),
        )));
    }
    let side = engine.card().input_size as usize;
    let plane = 3 * side * side;
    let probes = engine.probes.clone();
    let names: Vec<String> = probes.iter().map(|p| p.tensor.clone()).collect();
    for (i, (_, prep)) in prepared.iter().enumerate() {
        if abandoned() {
            return Ok(false);
        }
        let pts = &points[i];
        let render = std::time::Instant::now();
        let mut tensor = vec![0f32; pts.len() * plane];
        for (slot, &pt) in pts.iter().enumerate() {
            prep.write_chw(pt, &norm, &mut tensor[slot * plane..(slot + 1) * plane]);
        }
        timing.starved_secs += render.elapsed().as_secs_f64();
        let run = std::time::Instant::now();
        let (out, inner) = engine.probabilities_with(&tensor, pts.len(), &names).map_err(RunError::Model)?;
        let spent = run.elapsed().as_secs_f64();
        timing.run_secs += spent;
        timing.input_bytes += (tensor.len() * 4) as u64;
        timing.inputs += pts.len() as u64;
        if let Some(b) = busy {
            b.add(spent);
        }
        probs[i].extend(out);
        let per_point: Vec<Option<Vec<LayerError>>> = pts
            .iter()
            .enumerate()
            .map(|(p, pt)| {
                let errs = probes
                    .iter()
                    .zip(&inner)
                    .map(|(probe, (shape, values))| {
                        let n = shape.first().copied().unwrap_or(0);
                        let per = if n == pts.len() { values.len() / n } else { 0 };
                        let error = (p != reference && per > 0)
                            .then(|| {
                                let at = |q: usize| &values[q * per..(q + 1) * per];
                                probe_error(probe, &shape[1..], at(p), at(reference), (pt.dx.max(0.0) as u32, pt.dy.max(0.0) as u32))
                            })
                            .flatten();
                        LayerError { node: probe.node.clone(), op: probe.op.clone(), factor: probe.factor, blurred: probe.blurred, error }
                    })
                    .collect();
                Some(errs)
            })
            .collect();
        errors.push(per_point);
    }
    Ok(true)
}

/// The taps of an input that has none.
const NO_TAPS: [[f64; jagged_domain::transform::TAPS]; 2] = [[0.0; jagged_domain::transform::TAPS]; 2];

/// Pixels bound to the rendering session at a time: a shard's images go over
/// together (each once) unless they would take more than this.
const PIXELS_BOUND: usize = 64 << 20;

/// One input rendered in the graph: a window of its image at `(x0, y0)`, its
/// image turned by the angle whose sine and cosine `turn` holds, or its image
/// resampled from column `x0` and row `y0` on with `taps`.
#[derive(Clone, Copy)]
struct GraphInput<'a> {
    image: &'a jagged_domain::image::Rgb8,
    x0: i64,
    y0: i64,
    turn: [f32; 2],
    /// A sub-pixel window's weights along x and y.
    taps: [[f64; jagged_domain::transform::TAPS]; 2],
}

/// The images to bind for the inputs from here on: each once, in the order the
/// inputs show them, those of the first `batch` inputs always, then more while
/// their pixels stay within `budget` bytes.
fn pixel_group<'a>(views: &[GraphInput<'a>], batch: usize, budget: usize) -> Vec<&'a jagged_domain::image::Rgb8> {
    let mut group: Vec<&jagged_domain::image::Rgb8> = Vec::new();
    let mut bytes = 0;
    for (k, v) in views.iter().enumerate() {
        if group.iter().any(|g| std::ptr::eq(*g, v.image)) {
            continue;
        }
        if k >= batch && bytes + v.image.data.len() > budget {
            break;
        }
        bytes += v.image.data.len();
        group.push(v.image);
    }
    group
}

/// Rendering inside the model's graph: the pixels of the shard's images go to
/// ONNX Runtime once (on CUDA: to the device, where they stay for every batch
/// over them), then one view per input, and ONNX Runtime renders on the
/// model's device. Images are bound in groups of up to [`PIXELS_BOUND`] bytes,
/// in the order the inputs show them. Returns `Ok(false)` if abandoned.
#[allow(clippy::too_many_arguments)]
fn in_graph(
    engine: &mut Engine,
    rendering: Rendering,
    views: &[GraphInput<'_>],
    background: [f32; 3],
    work: &[(usize, usize)],
    batch: usize,
    fixed: bool,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut [Vec<Result<Vec<f32>, String>>],
    timing: &mut Timing,
    busy: Option<&Busy>,
) -> Result<bool, RunError> {
    let mut pixels: Vec<u8> = Vec::new();
    let mut rows: Vec<i64> = Vec::with_capacity(batch * 5);
    let mut turns: Vec<f32> = Vec::new();
    let mut taps: Vec<f64> = Vec::new();
    // Where each bound image starts, in pixels.
    let mut placed: std::collections::HashMap<*const jagged_domain::image::Rgb8, i64> = std::collections::HashMap::new();
    let mut bound = None;
    for (b, (chunk, vs)) in work.chunks(batch).zip(views.chunks(batch)).enumerate() {
        if abandoned() {
            return Ok(false);
        }
        let pack = std::time::Instant::now();
        if bound.is_none() || vs.iter().any(|v| !placed.contains_key(&(v.image as *const _))) {
            // A new group: this batch's images, then the next ones the inputs show
            // while they fit.
            pixels.clear();
            placed.clear();
            for image in pixel_group(&views[b * batch..], vs.len(), PIXELS_BOUND) {
                placed.insert(image as *const _, (pixels.len() / 3) as i64);
                pixels.extend_from_slice(&image.data);
            }
            drop(bound.take());
            let b = engine.bind_pixels_for(rendering, &pixels, background).map_err(RunError::Model)?;
            timing.input_bytes += b.bytes;
            bound = Some(b);
        }
        rows.clear();
        turns.clear();
        taps.clear();
        // Padded runs repeat the last input; its outputs are dropped.
        let n = if fixed { batch } else { vs.len() };
        for v in vs.iter().chain(std::iter::repeat_n(vs.last().expect("a batch has inputs"), n - vs.len())) {
            let start = placed[&(v.image as *const _)];
            rows.extend_from_slice(&[start, v.image.width as i64, v.image.height as i64, v.x0, v.y0]);
            match rendering {
                Rendering::Windows => {}
                Rendering::Turns => turns.extend_from_slice(&v.turn),
                Rendering::Shifts => {
                    for axis in &v.taps {
                        taps.extend_from_slice(axis);
                        taps.push(0.0);
                    }
                }
            }
        }
        timing.starved_secs += pack.elapsed().as_secs_f64();
        let run = std::time::Instant::now();
        let extra = match rendering {
            Rendering::Windows => PerInput::None,
            Rendering::Turns => PerInput::Turns(&turns),
            Rendering::Shifts => PerInput::Taps(&taps),
        };
        let out = engine.probabilities_bound(bound.as_mut().expect("bound above"), &rows, extra).map_err(RunError::Model)?;
        let spent = run.elapsed().as_secs_f64();
        timing.run_secs += spent;
        timing.input_bytes += (rows.len() * 8 + turns.len() * 4 + taps.len() * 8) as u64;
        timing.inputs += n as u64;
        if let Some(b) = busy {
            b.add(spent);
        }
        for (&(i, _), row) in chunk.iter().zip(out) {
            probs[i].push(row);
        }
    }
    Ok(true)
}

/// Rendering on host threads ahead of inference: a render thread fills batch
/// tensors (each batch's points split over `host` threads) up to [`AHEAD`]
/// batches ahead through a bounded channel, while this thread runs ONNX Runtime
/// on the previous ones; tensors are recycled. Returns `Ok(false)` if abandoned.
#[allow(clippy::too_many_arguments)]
fn pipelined(
    engine: &mut Engine,
    prepared: &[(TaskItem, Prepared)],
    points: &[Vec<GridPoint>],
    work: &[(usize, usize)],
    batch: usize,
    plane: usize,
    host: usize,
    fixed: bool,
    norm: jagged_domain::transform::Normalize,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut [Vec<Result<Vec<f32>, String>>],
    timing: &mut Timing,
    input_busy: Option<&Busy>,
) -> Result<bool, RunError> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Staging>(AHEAD);
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Staging>(AHEAD + 2);
    for _ in 0..AHEAD + 1 {
        free_tx.send(engine.staging(batch).map_err(RunError::Model)?).expect("capacity");
    }
    let (prepared_ref, points_ref, work_ref) = (prepared, points, work);
    std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in work_ref.chunks(batch) {
                let Ok(mut tensor) = free_rx.recv() else { return };
                let slots: Vec<(&(usize, usize), &mut [f32])> =
                    chunk.iter().zip(tensor.data_mut()[..chunk.len() * plane].chunks_mut(plane)).collect();
                let per = slots.len().div_ceil(host).max(1);
                let mut slots = slots;
                let render = |part: &mut [(&(usize, usize), &mut [f32])]| {
                    for (&(i, p), out) in part.iter_mut() {
                        prepared_ref[i].1.write_chw(points_ref[i][p], &norm, out);
                    }
                };
                if per >= slots.len() {
                    // One host thread: this one.
                    render(&mut slots);
                } else {
                    std::thread::scope(|r| {
                        for part in slots.chunks_mut(per) {
                            r.spawn(move || render(part));
                        }
                    });
                }
                if full_tx.send(tensor).is_err() {
                    return;
                }
            }
        });
        let full_rx = full_rx;
        for chunk in work.chunks(batch) {
            if abandoned() {
                return Ok(false);
            }
            let wait = std::time::Instant::now();
            let tensor = full_rx.recv().map_err(|_| RunError::RenderStopped)?;
            timing.starved_secs += wait.elapsed().as_secs_f64();
            let run = std::time::Instant::now();
            let n = if fixed { batch } else { chunk.len() };
            let out = engine.probabilities_staged(&tensor, n).map_err(RunError::Model)?;
            let spent = run.elapsed().as_secs_f64();
            timing.run_secs += spent;
            timing.input_bytes += (n * plane * 4) as u64;
            timing.inputs += n as u64;
            if let Some(b) = input_busy {
                b.add(spent);
            }
            let _ = free_tx.send(tensor);
            for (&(i, _), row) in chunk.iter().zip(out) {
                probs[i].push(row);
            }
        }
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jagged_domain::image::Rgb8;

    #[test]
    fn pixel_groups_take_a_batchs_images_then_what_fits() {
        // Images of 300, 600 and 300 bytes.
        let imgs = [
            Rgb8::from_raw(10, 10, vec![0; 300]).unwrap(),
            Rgb8::from_raw(20, 10, vec![1; 600]).unwrap(),
            Rgb8::from_raw(10, 10, vec![2; 300]).unwrap(),
        ];
        let v = |k: usize| GraphInput { image: &imgs[k], x0: 0, y0: 0, turn: [0.0; 2], taps: NO_TAPS };
        let views = [v(0), v(0), v(1), v(1), v(2), v(0)];
        let names = |g: Vec<&Rgb8>| g.iter().map(|i| imgs.iter().position(|j| std::ptr::eq(*i, j)).unwrap()).collect::<Vec<_>>();
        assert_eq!(names(pixel_group(&views, 2, 10_000)), vec![0, 1, 2], "all fit: each image once, in order");
        assert_eq!(names(pixel_group(&views, 2, 900)), vec![0, 1], "the third would pass the budget");
        assert_eq!(names(pixel_group(&views, 2, 100)), vec![0], "the batch's own images always");
        assert_eq!(names(pixel_group(&views, 5, 100)), vec![0, 1, 2], "however many that is");
        assert_eq!(names(pixel_group(&views[3..], 1, 800)), vec![1], "a later group starts at its batch");
    }
}
