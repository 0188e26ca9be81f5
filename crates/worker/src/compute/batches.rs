//! Inputs rendered on the host: batch by batch inline between runs, or on a
//! render thread ahead of them; and the one place a run's time is recorded.

use super::{Plan, Probs, RunError, Timing};
use jagged_domain::task::TaskItem;
use jagged_domain::transform::{Normalize, Prepared};
use jagged_infer::{Engine, Staging};
use std::time::Instant;

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

/// Where a shard's runs are recorded: its timing, and the attempt's busy time
/// that heartbeats report.
pub(crate) struct Meter<'a> {
    pub timing: &'a mut Timing,
    pub busy: Option<&'a Busy>,
}

impl Meter<'_> {
    /// Time spent waiting for inputs (rendering or packing them).
    pub fn starved(&mut self, since: Instant) {
        self.timing.starved_secs += since.elapsed().as_secs_f64();
    }

    /// One run that began at `since`, of `inputs` inputs handed over in `bytes`.
    pub fn ran(&mut self, since: Instant, bytes: u64, inputs: usize) {
        let spent = since.elapsed().as_secs_f64();
        self.timing.run_secs += spent;
        self.timing.input_bytes += bytes;
        self.timing.inputs += inputs as u64;
        if let Some(b) = self.busy {
            b.add(spent);
        }
    }
}

/// Gives each output of a batch to the item its input came from.
pub(crate) fn deliver(chunk: &[(usize, usize)], out: Vec<Result<Vec<f32>, String>>, probs: &mut Probs) {
    for (&(i, _), row) in chunk.iter().zip(out) {
        probs[i].push(row);
    }
}

/// Runs one batch rendered into `tensor` (the plan's full batch when it pads)
/// and records it.
fn run_staged(
    engine: &mut Engine,
    tensor: &Staging,
    chunk: &[(usize, usize)],
    plan: &Plan<'_>,
    probs: &mut Probs,
    meter: &mut Meter<'_>,
) -> Result<(), RunError> {
    let plane = 3 * (engine.card().input_size as usize).pow(2);
    let run = Instant::now();
    let n = if plan.fixed { plan.batch } else { chunk.len() };
    let out = engine.probabilities_staged(tensor, n).map_err(RunError::Model)?;
    meter.ran(run, (n * plane * 4) as u64, n);
    deliver(chunk, out, probs);
    Ok(())
}

/// Renders each batch on this thread, then runs it. Returns `Ok(false)` if
/// abandoned.
pub(crate) fn inline(
    engine: &mut Engine,
    prepared: &[(TaskItem, Prepared)],
    plan: &Plan<'_>,
    norm: Normalize,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut Probs,
    meter: &mut Meter<'_>,
) -> Result<bool, RunError> {
    let plane = 3 * (engine.card().input_size as usize).pow(2);
    let mut tensor = engine.staging(plan.batch).map_err(RunError::Model)?;
    for chunk in plan.work.chunks(plan.batch) {
        if abandoned() {
            return Ok(false);
        }
        let render = Instant::now();
        let data = tensor.data_mut();
        for (slot, &(i, p)) in chunk.iter().enumerate() {
            prepared[i].1.write_chw(plan.points[i][p], &norm, &mut data[slot * plane..(slot + 1) * plane]);
        }
        meter.starved(render);
        run_staged(engine, &tensor, chunk, plan, probs, meter)?;
    }
    Ok(true)
}

/// Batches rendered ahead of the one being inferred.
const AHEAD: usize = 2;

/// Rendering on host threads ahead of inference: a render thread fills batch
/// tensors (each batch's points split over `host` threads) up to [`AHEAD`]
/// batches ahead through a bounded channel, while this thread runs ONNX Runtime
/// on the previous ones; tensors are recycled. Returns `Ok(false)` if abandoned.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pipelined(
    engine: &mut Engine,
    prepared: &[(TaskItem, Prepared)],
    plan: &Plan<'_>,
    host: usize,
    norm: Normalize,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut Probs,
    meter: &mut Meter<'_>,
) -> Result<bool, RunError> {
    let plane = 3 * (engine.card().input_size as usize).pow(2);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Staging>(AHEAD);
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Staging>(AHEAD + 2);
    for _ in 0..AHEAD + 1 {
        free_tx.send(engine.staging(plan.batch).map_err(RunError::Model)?).expect("capacity");
    }
    let (batch, work, points) = (plan.batch, &plan.work, &plan.points);
    std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in work.chunks(batch) {
                let Ok(mut tensor) = free_rx.recv() else { return };
                let mut slots: Vec<(&(usize, usize), &mut [f32])> =
                    chunk.iter().zip(tensor.data_mut()[..chunk.len() * plane].chunks_mut(plane)).collect();
                let per = slots.len().div_ceil(host).max(1);
                let render = |part: &mut [(&(usize, usize), &mut [f32])]| {
                    for (&(i, p), out) in part.iter_mut() {
                        prepared[i].1.write_chw(points[i][p], &norm, out);
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
        // This side's ends of both channels go when it returns, early or not,
        // so a render thread waiting on either of them ends too.
        let (full_rx, free_tx) = (full_rx, free_tx);
        for chunk in plan.work.chunks(plan.batch) {
            if abandoned() {
                return Ok(false);
            }
            let wait = Instant::now();
            let tensor = full_rx.recv().map_err(|_| RunError::RenderStopped)?;
            meter.starved(wait);
            run_staged(engine, &tensor, chunk, plan, probs, meter)?;
            let _ = free_tx.send(tensor);
        }
        Ok(true)
    })
}
