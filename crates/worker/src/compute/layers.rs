//! A `layers` shard: each image's points in one run with the model's probes
//! exposed, then every probe's equivariance error of every point against the
//! reference.

use super::batches::Meter;
use super::{Plan, Probs, RunError};
use jagged_domain::metrics::equivariance::{probe_error, LayerError};
use jagged_domain::task::TaskItem;
use jagged_domain::transform::{Normalize, Prepared};
use jagged_infer::Engine;
use std::time::Instant;

/// Runs each image's points with the probes exposed (the engine must have
/// been loaded with them) and records each point's per-probe errors in
/// `errors`. Returns `Ok(false)` if abandoned.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    engine: &mut Engine,
    prepared: &[(TaskItem, Prepared)],
    plan: &Plan<'_>,
    norm: Normalize,
    abandoned: &(dyn Fn() -> bool + Sync),
    probs: &mut Probs,
    errors: &mut Vec<Vec<Option<Vec<LayerError>>>>,
    meter: &mut Meter<'_>,
) -> Result<bool, RunError> {
    if engine.probes.is_empty() {
        return Err(RunError::Model(jagged_infer::InferError::Run(
            "a layers sweep needs the model's subsampling nodes exposed, and this model has none".into(),
        )));
    }
    let side = engine.card().input_size as usize;
    let plane = 3 * side * side;
    let names: Vec<String> = engine.probes.iter().map(|p| p.tensor.clone()).collect();
    for (i, (_, prep)) in prepared.iter().enumerate() {
        if abandoned() {
            return Ok(false);
        }
        let pts = &plan.points[i];
        let render = Instant::now();
        let mut tensor = vec![0f32; pts.len() * plane];
        for (slot, &pt) in pts.iter().enumerate() {
            prep.write_chw(pt, &norm, &mut tensor[slot * plane..(slot + 1) * plane]);
        }
        meter.starved(render);
        let run = Instant::now();
        let (out, inner) = engine.probabilities_with(&tensor, pts.len(), &names).map_err(RunError::Model)?;
        meter.ran(run, (tensor.len() * 4) as u64, pts.len());
        probs[i].extend(out);
        errors.push(point_errors(engine, plan, i, &inner));
    }
    Ok(true)
}

/// Every point's error at each probe of image `i`, from the probes' outputs
/// for all its points (`inner`, in the probes' order).
fn point_errors(engine: &Engine, plan: &Plan<'_>, i: usize, inner: &[(Vec<usize>, Vec<f32>)]) -> Vec<Option<Vec<LayerError>>> {
    let pts = &plan.points[i];
    pts.iter()
        .enumerate()
        .map(|(p, pt)| {
            let errs = engine
                .probes
                .iter()
                .zip(inner)
                .map(|(probe, (shape, values))| {
                    let n = shape.first().copied().unwrap_or(0);
                    let per = if n == pts.len() { values.len() / n } else { 0 };
                    let error = (p != plan.reference && per > 0)
                        .then(|| {
                            let at = |q: usize| &values[q * per..(q + 1) * per];
                            probe_error(probe, &shape[1..], at(p), at(plan.reference), (pt.dx.max(0.0) as u32, pt.dy.max(0.0) as u32))
                        })
                        .flatten();
                    LayerError { node: probe.node.clone(), op: probe.op.clone(), factor: probe.factor, blurred: probe.blurred, error }
                })
                .collect();
            Some(errs)
        })
        .collect()
}
