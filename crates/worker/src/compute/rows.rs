//! Per-image metrics on full probability vectors, and the result rows of a
//! shard: one per point, computed here or taken from an earlier grid.

use super::prepare::par_map;
use super::{Inferred, Plan, Probs};
use jagged_artifacts::ResultRow;
use jagged_domain::metrics::{image_outcomes, PointOutcome};
use jagged_domain::task::{FailedItem, ShardTask, TaskItem};
use jagged_domain::transform::{GridPoint, Prepared, Widening};
use jagged_infer::Engine;
use std::collections::HashMap;

/// The rows a widened shard takes from an earlier grid of its family
/// (`Family::widening_of`): an item whose earlier rows are all here infers
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
    pub(crate) fn rows_of(&self, item: u32) -> Option<Vec<&ResultRow>> {
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

/// An item's label, where it has one.
fn label_of(item: &TaskItem) -> Option<usize> {
    item.image.label.filter(|&l| l >= 0).map(|l| l as usize)
}

/// Each item's point outcomes (pair metrics on full probability vectors), in
/// parallel on `host` threads; an item with an output that is not finite: why.
pub(crate) fn measure(prepared: &[(TaskItem, Prepared)], plan: &Plan<'_>, probs: &Probs, host: usize) -> Vec<Result<Vec<PointOutcome>, String>> {
    let items: Vec<usize> = (0..prepared.len()).collect();
    par_map(&items, host, |&i| {
        let vecs: Result<Vec<&[f32]>, String> = probs[i].iter().map(|r| r.as_ref().map(|v| v.as_slice()).map_err(|e| e.clone())).collect();
        let (pairs, reference) = match (&plan.taken_rows[i], &plan.local) {
            (Some(_), Some(local)) => (&local.pairs, local.reference),
            _ => (&plan.pairs, plan.reference),
        };
        vecs.map(|refs| image_outcomes(&refs, pairs, reference, label_of(&prepared[i].0)))
    })
}

/// A shard's rows as they are written.
pub(crate) struct Rows<'a> {
    task: &'a ShardTask,
    provider: &'static str,
    precision: &'static str,
    render: &'static str,
    /// The rows, item by item, each item's in point order.
    pub rows: Vec<ResultRow>,
    /// An adaptive shard's items that go on to the next ring, with their class.
    pub next_ring: Vec<(u32, u32)>,
    /// Rows taken from an earlier grid.
    pub taken: usize,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(task: &'a ShardTask, engine: &Engine, render: &'static str) -> Rows<'a> {
        Rows { task, provider: engine.provider, precision: engine.precision, render, rows: Vec::new(), next_ring: Vec::new(), taken: 0 }
    }

    /// Writes every measured item's rows (an item that could not be measured
    /// joins `failed`), and an adaptive shard's next ring.
    pub(crate) fn write(
        &mut self,
        prepared: &[(TaskItem, Prepared)],
        plan: &Plan<'_>,
        inferred: &Inferred,
        measured: Vec<Result<Vec<PointOutcome>, String>>,
        taken: Option<&Taken>,
        failed: &mut Vec<FailedItem>,
    ) {
        let task = self.task;
        self.rows.reserve(plan.work.len());
        let last_ring = task.family.last_ring();
        for (i, ((item, _), outcomes)) in prepared.iter().zip(measured).enumerate() {
            let outcomes = match outcomes {
                Ok(o) => o,
                Err(reason) => {
                    failed.push(FailedItem { index: item.index, name: item.image.name.clone(), reason });
                    continue;
                }
            };
            if task.ring > 0 {
                // The class every ring compares with: the first ring's reference.
                let class = item.reference.unwrap_or(outcomes[0].argmax);
                if task.ring < last_ring && outcomes.iter().skip(1).all(|o| o.argmax == class) {
                    self.next_ring.push((item.index, class));
                }
            }
            let probs = &inferred.probs[i];
            if let (Some(old), Some(t), Some(local)) = (&plan.taken_rows[i], taken, &plan.local) {
                self.widened(item, old, &t.widening, &local.at, plan.reference, &outcomes, probs);
                continue;
            }
            let points = &plan.points[i];
            for (p, o) in outcomes.iter().enumerate() {
                // Later rings rerun the reference for their pair metrics; its row
                // was written by the first.
                if task.ring > 1 && p == plan.reference {
                    continue;
                }
                let layers = inferred.layer_errors.get(i).and_then(|l| l.get(p).cloned()).flatten();
                let kept = task.keep_probs.then(|| probs[p].as_ref().ok().cloned()).flatten();
                self.rows.push(ResultRow { layers, ..self.row(item, &points[p], p == plan.reference, o, kept) });
            }
        }
    }

    /// A widened item: the grid's rows in order, each taken as it is or
    /// written from this run's outcomes (`at`: where each inferred grid point
    /// sits among them).
    #[allow(clippy::too_many_arguments)]
    fn widened(
        &mut self,
        item: &TaskItem,
        old: &[&ResultRow],
        widening: &Widening,
        at: &HashMap<usize, usize>,
        reference: usize,
        outcomes: &[PointOutcome],
        probs: &[Result<Vec<f32>, String>],
    ) {
        let task = self.task;
        let grid = task.family.shard_points(item.index, task.model.card.input_size, task.ring);
        for (j, reused) in widening.reused.iter().enumerate() {
            match reused {
                Some(o) => {
                    let mut row = old[*o].clone();
                    (row.sweep_id, row.shard_id, row.attempt) = (task.sweep_id, task.shard_id, task.attempt);
                    (row.model, row.family_index, row.point) = (task.model.name.clone(), task.family_index as i32, grid[j].index as i32);
                    row.is_reference = j == reference;
                    self.rows.push(row);
                    self.taken += 1;
                }
                None => {
                    let k = at[&j];
                    let kept = task.keep_probs.then(|| probs[k].as_ref().ok().cloned()).flatten();
                    let row = self.row(item, &grid[j], j == reference, &outcomes[k], kept);
                    self.rows.push(row);
                }
            }
        }
    }

    /// The row of a point computed here, with its outcome.
    fn row(&self, item: &TaskItem, point: &GridPoint, is_reference: bool, o: &PointOutcome, probs: Option<Vec<f32>>) -> ResultRow {
        let task = self.task;
        ResultRow {
            sweep_id: task.sweep_id,
            shard_id: task.shard_id,
            attempt: task.attempt,
            model: task.model.name.clone(),
            family: task.family.name().to_string(),
            family_index: task.family_index as i32,
            image_index: item.index as i32,
            image_name: item.image.name.clone(),
            label: label_of(item).map(|l| l as i32),
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
            provider: self.provider.to_string(),
            precision: self.precision.to_string(),
            render: self.render.to_string(),
            probs,
            layers: None,
        }
    }
}
