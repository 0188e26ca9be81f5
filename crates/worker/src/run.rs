//! The compute step of a shard: decode, render, infer, measure, encode.

use anyhow::{Context, Result};
use bytes::Bytes;
use jagged_artifacts::ResultRow;
use jagged_domain::metrics::image_outcomes;
use jagged_domain::transform::{Family, GridPoint, Prepared};
use jagged_infer::Engine;
use jagged_proto::v1::{FailedItem, ImageItem, ShardTask};

/// What the compute step needs.
pub struct ShardInput<'a> {
    /// The leased shard.
    pub task: &'a ShardTask,
    /// Its family.
    pub family: &'a Family,
    /// Each item with its file's bytes (a sequence: each frame's, in order), or
    /// why they could not be fetched.
    pub images: Vec<(ImageItem, Result<Vec<Bytes>, String>)>,
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
}

/// Runs a shard on `engine`. Returns `Ok(None)` when `abandoned()` turns true
/// (the lease was lost) before it finishes.
pub fn run_shard(engine: &mut Engine, input: ShardInput<'_>, abandoned: &dyn Fn() -> bool) -> Result<Option<ShardOutput>> {
    let task = input.task;
    let fam = input.family;
    let card = engine.card().clone();
    let side = card.input_size as usize;
    let plane = 3 * side * side;
    let pairs = fam.pairs();
    let reference = fam.reference();
    let mut failed = Vec::new();

    // Decode and prepare each image once.
    let mut prepared: Vec<(ImageItem, Prepared)> = Vec::new();
    for (item, bytes) in input.images {
        let res = bytes
            .and_then(|files| {
                let many = files.len() > 1;
                files
                    .iter()
                    .enumerate()
                    .map(|(k, b)| jagged_infer::decode_image(b).map_err(|e| if many { format!("frame {k}: {e}") } else { e.to_string() }))
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(|imgs| fam.prepare_item(&imgs, card.input_size));
        match res {
            Ok(p) => prepared.push((item, p)),
            Err(reason) => failed.push(FailedItem { image_index: item.index, image_name: item.name.clone(), reason }),
        }
    }

    // Each image's points (the same for all but seeded random draws), then every
    // (image, point) in order, batched across images.
    let points: Vec<Vec<GridPoint>> = prepared.iter().map(|(item, _)| fam.image_points(item.index, card.input_size)).collect();
    let work: Vec<(usize, usize)> = (0..prepared.len()).flat_map(|i| (0..points[i].len()).map(move |p| (i, p))).collect();
    let batch = (task.batch_size.max(1) as usize).min(work.len().max(1));
    let mut tensor = vec![0f32; batch * plane];
    let mut probs: Vec<Vec<Result<Vec<f32>, String>>> = points.iter().map(|p| Vec::with_capacity(p.len())).collect();
    for chunk in work.chunks(batch) {
        if abandoned() {
            return Ok(None);
        }
        for (slot, &(i, p)) in chunk.iter().enumerate() {
            prepared[i].1.write_chw(points[i][p], &card.normalize, &mut tensor[slot * plane..(slot + 1) * plane]);
        }
        let out = engine.probabilities(&tensor[..chunk.len() * plane], chunk.len()).context("running the model")?;
        for (&(i, _), row) in chunk.iter().zip(out) {
            probs[i].push(row);
        }
    }

    let mut rows = Vec::with_capacity(work.len());
    for (((item, _), probs), points) in prepared.iter().zip(probs).zip(&points) {
        let vecs: Result<Vec<Vec<f32>>, String> = probs.into_iter().collect();
        let vecs = match vecs {
            Ok(v) => v,
            Err(reason) => {
                failed.push(FailedItem { image_index: item.index, image_name: item.name.clone(), reason });
                continue;
            }
        };
        let label = (item.label >= 0).then_some(item.label as usize);
        let refs: Vec<&[f32]> = vecs.iter().map(|v| v.as_slice()).collect();
        let outcomes = image_outcomes(&refs, &pairs, reference, label);
        for (p, o) in outcomes.into_iter().enumerate() {
            rows.push(ResultRow {
                sweep_id: task.sweep_id,
                shard_id: task.shard_id,
                attempt: task.attempt,
                model: task.model_name.clone(),
                family: fam.name().to_string(),
                family_index: task.family_index as i32,
                image_index: item.index as i32,
                image_name: item.name.clone(),
                label: label.map(|l| l as i32),
                point: p as i32,
                dx: points[p].dx,
                dy: points[p].dy,
                scale: points[p].scale,
                angle: points[p].angle,
                is_reference: p == reference,
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
                probs: task.keep_probs.then(|| vecs[p].clone()),
            });
        }
    }
    failed.sort_by_key(|f| f.image_index);
    let part = jagged_artifacts::encode(&rows).context("encoding the result part")?;
    Ok(Some(ShardOutput { part, rows: rows.len(), failed, provider: engine.provider }))
}
