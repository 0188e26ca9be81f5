//! Metrics, with the exact definitions of the design brief.
//!
//! Per image, the worker turns the probability vectors of all grid points into one
//! [`PointOutcome`] per point ([`image_outcomes`]). Each neighbour pair `(a, b)` of
//! the family is attributed to its first point `a`, so summing the `fwd_*` fields
//! over rows gives the pair totals exactly once.
//!
//! The report folds result rows image by image into [`Totals`] (counters that
//! merge in any order), and every metric of the table is a function of those
//! counters, declared once in [`METRICS`] with its name, definition, unit,
//! format and the families it applies to. Headers, cells, the glossary, the
//! published-value lookup and the bootstrap intervals all read that one list.
//!
//! - [`totals`]: the counters and how one image's rows add to them.
//! - [`table`]: the metric descriptors ([`Metric`], [`METRICS`]).
//! - [`bootstrap`]: bounded per-image samples and percentile intervals.
//! - [`normalised`](mod@normalised): mFR / mT5D against a baseline model.

pub mod bootstrap;
pub mod equivariance;
pub mod normalised;
pub mod table;
pub mod totals;

pub use bootstrap::{bootstrap, ImageSample, Interval, Intervals, SAMPLE_CAP};
pub use normalised::{normalised, Normalised};
pub use table::{Applies, Format, Metric, Per, METRICS};
pub use totals::{RowView, Totals};

use serde::{Deserialize, Serialize};

/// Numerically stable softmax in `f64` accumulation, written into `out`.
pub fn softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for (o, &l) in out.iter_mut().zip(logits) {
        let e = ((l - max) as f64).exp();
        *o = e as f32;
        sum += e;
    }
    let inv = (1.0 / sum) as f32;
    out.iter_mut().for_each(|o| *o *= inv);
}

/// Index of the largest value; the lowest index wins ties.
pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

/// The `k` largest entries as (class, value), descending; ties by lower class.
pub fn top_k(p: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..p.len() as u32).collect();
    let k = k.min(p.len());
    let cmp = |a: &u32, b: &u32| p[*b as usize].total_cmp(&p[*a as usize]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, p[i as usize])).collect()
}

/// 0-based rank of `class` under the order of [`top_k`]: the entries that beat it.
fn rank(p: &[f32], class: usize) -> usize {
    let v = p[class];
    p.iter().enumerate().filter(|&(i, &x)| x > v || (x == v && i < class)).count()
}

fn in_top5(p: &[f32], class: usize) -> bool {
    rank(p, class) < 5
}

/// ImageNet-P's top-5 distance from ranking `p` to ranking `q`: for each of p's
/// top-5 classes at (0-based) position `k`, with rank `r` in `q` (0-based, capped
/// at 5), the sum of `|k - min(r, 5)|`. Zero when the top-5 lists agree in order;
/// as the reference code (`hendrycks/robustness`, `ImageNet-P/test.py`) computes
/// it from cumulative sums of `[0, 1, 1, 1, 1, 1, 0, ...]`.
pub fn top5_distance(p: &[f32], q: &[f32]) -> u32 {
    top_k(p, 5).iter().enumerate().map(|(k, &(c, _))| (k as i64 - rank(q, c as usize).min(5) as i64).unsigned_abs() as u32).sum()
}

/// What the result row of one grid point carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointOutcome {
    /// argmax of p at this point.
    pub argmax: u32,
    /// Top-5 classes and probabilities, descending.
    pub top5: Vec<(u32, f32)>,
    /// p(true class), if the image is labelled.
    pub p_label: Option<f32>,
    /// p at this point of the reference point's argmax class.
    pub p_ref_top1: f32,
    /// Neighbour pairs whose first point is this one.
    pub fwd_pairs: u32,
    /// Of those, pairs whose argmax differs.
    pub fwd_top1_changes: u32,
    /// Sum over those pairs of |p_c(x) - p_c(x')|, c = argmax p(x).
    pub fwd_abs_diff: f64,
    /// Of those, pairs where the true class enters or leaves the top-5 (0 if unlabelled).
    pub fwd_top5_transitions: u32,
    /// Sum over those pairs of the [`top5_distance`] from this point to its neighbour.
    pub fwd_top5_dist: u32,
}

/// Per-point outcomes of one image from its full probability vectors.
pub fn image_outcomes(probs: &[&[f32]], pairs: &[(usize, usize)], reference: usize, label: Option<usize>) -> Vec<PointOutcome> {
    let argmaxes: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let ref_c = argmaxes[reference];
    let label = label.filter(|&l| probs.first().is_some_and(|p| l < p.len()));
    let top5flags: Vec<bool> = match label {
        Some(l) => probs.iter().map(|p| in_top5(p, l)).collect(),
        None => vec![false; probs.len()],
    };
    let mut out: Vec<PointOutcome> = probs
        .iter()
        .zip(&argmaxes)
        .map(|(p, &a)| PointOutcome {
            argmax: a as u32,
            top5: top_k(p, 5),
            p_label: label.map(|l| p[l]),
            p_ref_top1: p[ref_c],
            fwd_pairs: 0,
            fwd_top1_changes: 0,
            fwd_abs_diff: 0.0,
            fwd_top5_transitions: 0,
            fwd_top5_dist: 0,
        })
        .collect();
    for &(a, b) in pairs {
        let c = argmaxes[a];
        let o = &mut out[a];
        o.fwd_pairs += 1;
        o.fwd_top1_changes += (argmaxes[a] != argmaxes[b]) as u32;
        o.fwd_abs_diff += (probs[a][c] as f64 - probs[b][c] as f64).abs();
        o.fwd_top5_dist += top5_distance(probs[a], probs[b]);
        if label.is_some() {
            o.fwd_top5_transitions += (top5flags[a] != top5flags[b]) as u32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_hand_values() {
        let mut p = [0f32; 3];
        softmax(&[0.0, (2f32).ln(), (5f32).ln()], &mut p);
        assert!((p[0] - 0.125).abs() < 1e-7 && (p[1] - 0.25).abs() < 1e-7 && (p[2] - 0.625).abs() < 1e-7);
        softmax(&[1000.0, 1000.0], &mut p[..2]);
        assert_eq!(&p[..2], &[0.5, 0.5]);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_class() {
        let p = [0.1, 0.3, 0.3, 0.05, 0.25];
        assert_eq!(top_k(&p, 3), vec![(1, 0.3), (2, 0.3), (4, 0.25)]);
        assert_eq!(argmax(&p), 1);
    }

    /// Three points in a row (pairs (0,1), (1,2)), four classes, label 3.
    /// p0 = [.5 .2 .2 .1]  argmax 0
    /// p1 = [.3 .4 .2 .1]  argmax 1
    /// p2 = [.3 .4 .25 .05] argmax 1
    /// Top-1 changes: (0,1) yes, (1,2) no -> 1 of 2 pairs.
    /// MAC: |p0[0]-p1[0]| = .2, |p1[1]-p2[1]| = 0 -> sum .2.
    /// With only 4 classes the label is always in the top-5: no transitions.
    #[test]
    fn pair_metrics_by_hand() {
        let p0 = [0.5f32, 0.2, 0.2, 0.1];
        let p1 = [0.3f32, 0.4, 0.2, 0.1];
        let p2 = [0.3f32, 0.4, 0.25, 0.05];
        let probs: Vec<&[f32]> = vec![&p0, &p1, &p2];
        let o = image_outcomes(&probs, &[(0, 1), (1, 2)], 0, Some(3));
        assert_eq!(o[0].fwd_pairs, 1);
        assert_eq!(o[0].fwd_top1_changes, 1);
        assert!((o[0].fwd_abs_diff - 0.2).abs() < 1e-7);
        assert_eq!(o[1].fwd_top1_changes, 0);
        assert_eq!(o[1].fwd_abs_diff, 0.0);
        assert_eq!(o[2].fwd_pairs, 0);
        assert_eq!(o[1].p_ref_top1, 0.3);
        assert_eq!(o[2].p_label, Some(0.05));
        assert!(o.iter().all(|x| x.fwd_top5_transitions == 0));
    }

    /// Seven classes, label 6. p(label) ranks 6th, 3rd, 6th across three points:
    /// the label enters then leaves the top-5: 2 transitions.
    #[test]
    fn top5_transitions_by_hand() {
        let a = [0.3f32, 0.2, 0.15, 0.14, 0.1, 0.01, 0.1];
        // label 0.1 ties class 4's 0.1; class 4 wins the tie (lower index) -> label 6th
        let b = [0.3f32, 0.2, 0.05, 0.04, 0.03, 0.18, 0.2];
        // label 0.2 ties class 1 -> rank 3 (after 0.3 and class 1)
        let c = a;
        let probs: Vec<&[f32]> = vec![&a, &b, &c];
        let o = image_outcomes(&probs, &[(0, 1), (1, 2)], 0, Some(6));
        assert_eq!(o[0].fwd_top5_transitions, 1);
        assert_eq!(o[1].fwd_top5_transitions, 1);
        let unl = image_outcomes(&probs, &[(0, 1), (1, 2)], 0, None);
        assert!(unl.iter().all(|x| x.fwd_top5_transitions == 0 && x.p_label.is_none()));
    }

    /// Eight classes. p ranks them 0 1 2 3 4 | 5 6 7.
    #[test]
    fn top5_distance_by_hand() {
        let p = [0.30f32, 0.20, 0.15, 0.12, 0.10, 0.06, 0.04, 0.03];
        assert_eq!(top5_distance(&p, &p), 0);
        // Top-1 and top-2 swap: |0-1| + |1-0| = 2.
        let q = [0.20f32, 0.30, 0.15, 0.12, 0.10, 0.06, 0.04, 0.03];
        assert_eq!(top5_distance(&p, &q), 2);
        // Class 0 drops to rank 7 (capped at 5), the others move up one:
        // |0-5| + |1-0| + |2-1| + |3-2| + |4-3| = 9.
        let r = [0.01f32, 0.30, 0.20, 0.15, 0.12, 0.10, 0.06, 0.04];
        assert_eq!(top5_distance(&p, &r), 9);
        // Order below the top-5 does not matter; ties rank the lower class first.
        let t = [0.30f32, 0.20, 0.15, 0.12, 0.10, 0.03, 0.04, 0.06];
        assert_eq!(top5_distance(&p, &t), 0);
        let tie = [0.30f32, 0.20, 0.12, 0.12, 0.10, 0.06, 0.04, 0.03];
        assert_eq!(top5_distance(&p, &tie), 0);
        // Attributed to the pair's first point.
        let probs: Vec<&[f32]> = vec![&p, &r, &r];
        let o = image_outcomes(&probs, &[(0, 1), (1, 2), (0, 2)], 0, None);
        assert_eq!((o[0].fwd_top5_dist, o[1].fwd_top5_dist, o[2].fwd_top5_dist), (18, 0, 0));
    }
}
