//! Metrics, with the exact definitions of the design brief.
//!
//! Per image, the worker turns the probability vectors of all grid points into one
//! [`PointOutcome`] per point ([`image_outcomes`]). Each neighbour pair `(a, b)` of
//! the family is attributed to its first point `a`, so summing the `fwd_*` fields
//! over rows gives the pair totals exactly once. A [`Summary`] accumulates rows of
//! one (model, family) and [`Summary::finish`] yields the table row:
//!
//! - acc@1 / acc@5: at the reference point, over labelled images.
//! - P(top-1 change) = mean over pairs of `1[argmax p(x) != argmax p(x')]`.
//! - MAC = mean over pairs of `|p_c(x) - p_c(x')|`, `c = argmax p(x)`.
//! - Jaggedness: per image, the number of pairs where the true class enters or
//!   leaves the top-5; reported as the fraction of labelled images with at least one
//!   such transition and the mean count per labelled image.
//! - Worst-of-grid accuracy (Engstrom et al.): labelled images whose top-1 is the
//!   true class at every point of the grid.
//! - Flip probability (Hendrycks & Dietterich, ImageNet-P): per image, the share
//!   of its pairs whose argmax differs; averaged over images (equal to P(top-1
//!   change) when every image has the same pairs).
//! - Top-5 distance (ImageNet-P): per pair, [`top5_distance`] between the two
//!   rankings; per image the mean over its pairs; averaged over images.
//! - mFR / mT5D: a model's flip probability (top-5 distance) divided by the
//!   baseline model's on the same family, averaged over families ([`normalised`]).

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

/// One result row as the summary needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RowView<'a> {
    /// Image index within the sweep.
    pub image: u32,
    /// The true class, if any.
    pub label: Option<i32>,
    /// Is this the reference point of the family?
    pub is_reference: bool,
    /// Top-5 classes, descending.
    pub top5_class: &'a [i32],
    /// Forward pairs of this point.
    pub fwd_pairs: u32,
    /// Forward pairs with a changed argmax.
    pub fwd_top1_changes: u32,
    /// Sum of |p_c(x) - p_c(x')| over forward pairs.
    pub fwd_abs_diff: f64,
    /// Forward pairs where the true class crosses the top-5 border.
    pub fwd_top5_transitions: u32,
    /// Sum of top-5 distances over forward pairs.
    pub fwd_top5_dist: u32,
}

/// Running totals for one (model, family); merge partial summaries in any order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Result rows (inferences).
    pub inferences: u64,
    /// Reference rows (one per image that completed).
    pub images: u64,
    /// Labelled reference rows.
    pub labelled: u64,
    /// Labelled images with the true class at top-1 of the reference point.
    pub correct1: u64,
    /// ... within the top-5.
    pub correct5: u64,
    /// Neighbour pairs.
    pub pairs: u64,
    /// Pairs with a changed argmax.
    pub top1_changes: u64,
    /// Sum of |p_c(x) - p_c(x')| over pairs.
    pub abs_diff: f64,
    /// Sum over labelled images of their top-5 transitions.
    pub transitions: u64,
    /// Labelled images with at least one transition.
    pub jagged_images: u64,
    /// Labelled images correct at every grid point.
    pub worst_correct: u64,
    /// Sum of top-5 distances over pairs.
    pub top5_dist: u64,
    /// Images with at least one pair.
    pub paired_images: u64,
    /// Sum over images of their share of flipped pairs.
    pub image_flip_sum: f64,
    /// Sum over images of their mean top-5 distance.
    pub image_t5d_sum: f64,
    /// Items (images) that failed.
    pub failed_items: u64,
}

/// One image's contribution to the headline metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImageStats {
    /// Neighbour pairs.
    pub pairs: u64,
    /// Pairs with a changed argmax.
    pub changes: u64,
    /// Sum of |p_c(x) - p_c(x')| over the pairs.
    pub abs: f64,
    /// Labelled images (1 or 0 for one image; more for a group of images).
    pub labelled: u64,
    /// Labelled images top-1 correct at the reference point.
    pub correct1: u64,
    /// Labelled images with at least one top-5 transition.
    pub jagged: u64,
    /// Sum of top-5 distances over the pairs.
    pub top5_dist: u64,
}

/// A two-sided percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// 95% bootstrap intervals of the headline metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// acc@1 at the reference.
    pub acc1: Option<Interval>,
    /// P(top-1 change).
    pub p_top1_change: Option<Interval>,
    /// MAC.
    pub mac: Option<Interval>,
    /// Fraction of jagged images.
    pub jagged_fraction: Option<Interval>,
}

impl ImageStats {
    /// Adds another image's (or group's) statistics.
    pub fn add(&mut self, o: &ImageStats) {
        self.pairs += o.pairs;
        self.changes += o.changes;
        self.abs += o.abs;
        self.labelled += o.labelled;
        self.correct1 += o.correct1;
        self.jagged += o.jagged;
        self.top5_dist += o.top5_dist;
    }
}

/// The per-image statistics a bootstrap resamples, in bounded memory: each
/// image's own up to `cap` images; past that, images are summed into `cap`
/// groups by a hash of their index, and the bootstrap resamples the groups.
/// Random groups of many images are independent and identically distributed,
/// so resampling them estimates the same variance as resampling images, while
/// memory and bootstrap time stay fixed however large the sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSample {
    cap: usize,
    exact: Vec<ImageStats>,
    images: Vec<u32>,
    groups: Option<Vec<ImageStats>>,
}

/// Default [`ImageSample`] capacity.
pub const SAMPLE_CAP: usize = 10_000;

impl ImageSample {
    /// An empty sample holding at most `cap` units (at least 1).
    pub fn new(cap: usize) -> ImageSample {
        ImageSample { cap: cap.max(1), ..Default::default() }
    }

    fn group(&self, image: u32) -> usize {
        (crate::rng::SplitMix(image as u64 ^ 0x6a09_e667_f3bc_c908).next_u64() % self.cap as u64) as usize
    }

    /// Adds one image.
    pub fn add(&mut self, image: u32, s: ImageStats) {
        if self.groups.is_none() && self.exact.len() < self.cap {
            self.exact.push(s);
            self.images.push(image);
            return;
        }
        if self.groups.is_none() {
            let mut groups = vec![ImageStats::default(); self.cap];
            for (img, st) in self.images.iter().zip(&self.exact) {
                groups[self.group(*img)].add(st);
            }
            self.groups = Some(groups);
            self.exact = Vec::new();
            self.images = Vec::new();
        }
        let g = self.group(image);
        self.groups.as_mut().expect("grouped")[g].add(&s);
    }

    /// Adds every image of another sample, in its order.
    pub fn merge(&mut self, o: ImageSample) {
        match o.groups {
            None => o.images.into_iter().zip(o.exact).for_each(|(i, s)| self.add(i, s)),
            Some(groups) => {
                // Same capacity, same hash: group g of one is group g of the other.
                if let Some(mine) = &mut self.groups {
                    mine.iter_mut().zip(&groups).for_each(|(a, b)| a.add(b));
                } else {
                    let own = std::mem::take(&mut self.exact);
                    let imgs = std::mem::take(&mut self.images);
                    self.groups = Some(groups);
                    imgs.into_iter().zip(own).for_each(|(i, s)| self.add(i, s));
                }
            }
        }
    }

    /// What the bootstrap resamples: the images, or the groups once grouped.
    pub fn units(&self) -> Vec<ImageStats> {
        match &self.groups {
            None => self.exact.clone(),
            Some(g) => g.iter().filter(|s| s.pairs > 0 || s.labelled > 0).cloned().collect(),
        }
    }

    /// Whether images were grouped.
    pub fn grouped(&self) -> bool {
        self.groups.is_some()
    }
}

/// 95% percentile bootstrap over images: `resamples` draws of as many images with
/// replacement (seeded, so reports are reproducible); each metric is recomputed
/// as a ratio of sums on every draw, and the 2.5th and 97.5th percentiles kept.
pub fn bootstrap(images: &[ImageStats], resamples: usize, seed: u64) -> Intervals {
    let n = images.len();
    if n == 0 || resamples == 0 {
        return Intervals::default();
    }
    let mut rng = crate::rng::SplitMix(seed);
    let mut draws: [Vec<f64>; 4] = Default::default();
    for _ in 0..resamples {
        let (mut pairs, mut changes, mut abs, mut lab, mut c1, mut jag) = (0u64, 0u64, 0f64, 0u64, 0u64, 0u64);
        for _ in 0..n {
            let s = &images[(rng.next_u64() % n as u64) as usize];
            pairs += s.pairs;
            changes += s.changes;
            abs += s.abs;
            lab += s.labelled;
            c1 += s.correct1;
            jag += s.jagged;
        }
        if lab > 0 {
            draws[0].push(c1 as f64 / lab as f64);
            draws[3].push(jag as f64 / lab as f64);
        }
        if pairs > 0 {
            draws[1].push(changes as f64 / pairs as f64);
            draws[2].push(abs / pairs as f64);
        }
    }
    let interval = |v: &mut Vec<f64>| -> Option<Interval> {
        if v.len() < resamples / 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let lo = ((0.025 * v.len() as f64).floor() as usize).min(v.len() - 1);
        let hi = (((0.975 * v.len() as f64).ceil() as usize).max(1) - 1).min(v.len() - 1);
        Some(Interval { lo: v[lo], hi: v[hi] })
    };
    let [a, p, m, j] = &mut draws;
    Intervals { acc1: interval(a), p_top1_change: interval(p), mac: interval(m), jagged_fraction: interval(j) }
}

/// Finished metrics of a [`Summary`]; `None` where the denominator is zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Images with results.
    pub images: u64,
    /// Inferences.
    pub inferences: u64,
    /// Failed items.
    pub failed_items: u64,
    /// Top-1 accuracy at the reference input.
    pub acc1: Option<f64>,
    /// Top-5 accuracy at the reference input.
    pub acc5: Option<f64>,
    /// P(top-1 change) over neighbour pairs.
    pub p_top1_change: Option<f64>,
    /// Mean absolute change of the first point's top-1 probability.
    pub mac: Option<f64>,
    /// Fraction of labelled images with at least one top-5 transition.
    pub jagged_fraction: Option<f64>,
    /// Mean top-5 transitions per labelled image.
    pub mean_transitions: Option<f64>,
    /// Fraction of labelled images correct at every grid point.
    pub worst_of_grid_acc: Option<f64>,
    /// Flip probability: per-image share of flipped pairs, averaged over images.
    pub flip_prob: Option<f64>,
    /// Top-5 distance: per-image mean over pairs, averaged over images.
    pub top5_dist: Option<f64>,
}

impl Summary {
    /// Adds every row of one image (all its grid points), so per-image counts are
    /// exact; returns the image's own contribution (for bootstrap intervals).
    pub fn add_image(&mut self, rows: &[RowView<'_>]) -> ImageStats {
        let before = self.clone();
        let mut transitions = 0u64;
        let mut labelled = false;
        let mut all_correct = true;
        for r in rows {
            all_correct &= r.label.is_some() && r.top5_class.first() == r.label.as_ref();
            self.inferences += 1;
            self.pairs += r.fwd_pairs as u64;
            self.top1_changes += r.fwd_top1_changes as u64;
            self.abs_diff += r.fwd_abs_diff;
            self.top5_dist += r.fwd_top5_dist as u64;
            transitions += r.fwd_top5_transitions as u64;
            if r.is_reference {
                self.images += 1;
                if let Some(l) = r.label {
                    labelled = true;
                    self.labelled += 1;
                    self.correct1 += (r.top5_class.first() == Some(&l)) as u64;
                    self.correct5 += r.top5_class.iter().take(5).any(|&c| c == l) as u64;
                }
            }
        }
        if labelled {
            self.transitions += transitions;
            self.jagged_images += (transitions > 0) as u64;
            self.worst_correct += all_correct as u64;
        }
        let stats = ImageStats {
            pairs: self.pairs - before.pairs,
            changes: self.top1_changes - before.top1_changes,
            abs: self.abs_diff - before.abs_diff,
            labelled: labelled as u64,
            correct1: self.correct1 - before.correct1,
            jagged: self.jagged_images - before.jagged_images,
            top5_dist: self.top5_dist - before.top5_dist,
        };
        if stats.pairs > 0 {
            self.paired_images += 1;
            self.image_flip_sum += stats.changes as f64 / stats.pairs as f64;
            self.image_t5d_sum += stats.top5_dist as f64 / stats.pairs as f64;
        }
        stats
    }

    /// Adds another partial summary.
    pub fn merge(&mut self, o: &Summary) {
        self.inferences += o.inferences;
        self.images += o.images;
        self.labelled += o.labelled;
        self.correct1 += o.correct1;
        self.correct5 += o.correct5;
        self.pairs += o.pairs;
        self.top1_changes += o.top1_changes;
        self.abs_diff += o.abs_diff;
        self.transitions += o.transitions;
        self.jagged_images += o.jagged_images;
        self.worst_correct += o.worst_correct;
        self.top5_dist += o.top5_dist;
        self.paired_images += o.paired_images;
        self.image_flip_sum += o.image_flip_sum;
        self.image_t5d_sum += o.image_t5d_sum;
        self.failed_items += o.failed_items;
    }

    /// The metrics.
    pub fn finish(&self) -> SummaryRow {
        let ratio = |n: f64, d: u64| (d > 0).then(|| n / d as f64);
        SummaryRow {
            images: self.images,
            inferences: self.inferences,
            failed_items: self.failed_items,
            acc1: ratio(self.correct1 as f64, self.labelled),
            acc5: ratio(self.correct5 as f64, self.labelled),
            p_top1_change: ratio(self.top1_changes as f64, self.pairs),
            mac: ratio(self.abs_diff, self.pairs),
            jagged_fraction: ratio(self.jagged_images as f64, self.labelled),
            mean_transitions: ratio(self.transitions as f64, self.labelled),
            worst_of_grid_acc: ratio(self.worst_correct as f64, self.labelled),
            flip_prob: ratio(self.image_flip_sum, self.paired_images),
            top5_dist: ratio(self.image_t5d_sum, self.paired_images),
        }
    }
}

/// One model's flip rates (FR) and top-5 distances (T5D) relative to a baseline
/// model, family by family, with their means (mFR, mT5D) as in ImageNet-P:
/// `FR = FP_model / FP_baseline`, `mFR = mean of FR over the families`. Families
/// where the baseline's value is 0 or missing have no ratio and are left out of
/// the mean (their count is reported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalised {
    /// Per family: FR, or `None` when the baseline gives no ratio.
    pub fr: Vec<Option<f64>>,
    /// Per family: T5D ratio, or `None`.
    pub t5d: Vec<Option<f64>>,
    /// Mean of the FRs that exist.
    pub mfr: Option<f64>,
    /// Mean of the T5D ratios that exist.
    pub mt5d: Option<f64>,
}

/// Normalises `model`'s per-family (flip probability, top-5 distance) by
/// `baseline`'s, family by family (both slices in the same family order).
pub fn normalised(model: &[(Option<f64>, Option<f64>)], baseline: &[(Option<f64>, Option<f64>)]) -> Normalised {
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let fr: Vec<Option<f64>> = model.iter().zip(baseline).map(|(m, b)| ratio(m.0, b.0)).collect();
    let t5d: Vec<Option<f64>> = model.iter().zip(baseline).map(|(m, b)| ratio(m.1, b.1)).collect();
    let mean = |v: &[Option<f64>]| {
        let x: Vec<f64> = v.iter().flatten().copied().collect();
        (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
    };
    Normalised { mfr: mean(&fr), mt5d: mean(&t5d), fr, t5d }
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

    #[allow(clippy::too_many_arguments)]
    fn row(
        image: u32,
        label: Option<i32>,
        is_ref: bool,
        top5: &[i32],
        pairs: u32,
        ch: u32,
        d: f64,
        t: u32,
    ) -> (u32, Option<i32>, bool, Vec<i32>, u32, u32, f64, u32) {
        (image, label, is_ref, top5.to_vec(), pairs, ch, d, t)
    }

    #[test]
    fn summary_by_hand() {
        // Image 0 (label 7): ref top-1 is 7; 2 pairs, 1 change, |diff| .5, 2 transitions.
        // Image 1 (label 3): ref top5 = [1,2,3,..]: wrong at top-1, right at top-5; 2 pairs, 0 changes, .1, 0 transitions.
        // Image 2 (unlabelled): 1 pair, 1 change, .3.
        let rows = [
            vec![row(0, Some(7), true, &[7, 1, 2, 3, 4], 1, 1, 0.25, 1), row(0, Some(7), false, &[1, 7, 2, 3, 4], 1, 0, 0.25, 1)],
            vec![row(1, Some(3), true, &[1, 2, 3, 4, 5], 2, 0, 0.1, 0)],
            vec![row(2, None, true, &[0, 1, 2, 3, 4], 1, 1, 0.3, 0)],
        ];
        let mut s = Summary::default();
        for img in &rows {
            let views: Vec<RowView> = img
                .iter()
                .map(|r| RowView {
                    image: r.0,
                    label: r.1,
                    is_reference: r.2,
                    top5_class: &r.3,
                    fwd_pairs: r.4,
                    fwd_top1_changes: r.5,
                    fwd_abs_diff: r.6,
                    fwd_top5_transitions: r.7,
                    fwd_top5_dist: 2 * r.5,
                })
                .collect();
            s.add_image(&views);
        }
        let f = s.finish();
        assert_eq!((f.images, f.inferences), (3, 4));
        assert_eq!(f.acc1, Some(0.5));
        assert_eq!(f.acc5, Some(1.0));
        assert_eq!(f.p_top1_change, Some(2.0 / 5.0));
        assert!((f.mac.unwrap() - 0.9 / 5.0).abs() < 1e-12);
        assert_eq!(f.jagged_fraction, Some(0.5));
        assert_eq!(f.mean_transitions, Some(1.0));
        // Image 0 is wrong at its second point; image 1 wrong at its only point.
        assert_eq!(f.worst_of_grid_acc, Some(0.0));
        // Flip probability: per image 1/2, 0/2, 1/1 -> mean 0.5 (P(top-1 change) is 2/5).
        assert_eq!(f.flip_prob, Some(0.5));
        // Top-5 distance (2 per change here): per image 2/2, 0/2, 2/1 -> mean 1.
        assert_eq!(f.top5_dist, Some(1.0));
        let mut halves = Summary::default();
        halves.merge(&s);
        assert_eq!(halves, s);
        assert_eq!(Summary::default().finish().acc1, None);
    }

    #[test]
    fn image_sample_keeps_images_then_groups_them_in_fixed_memory() {
        let st = |i: u64| ImageStats { pairs: 2, changes: i % 2, abs: 0.25, labelled: 1, correct1: i % 3 / 2, jagged: 0, top5_dist: i };
        let mut s = ImageSample::new(4);
        for i in 0..4 {
            s.add(i as u32, st(i));
        }
        assert!(!s.grouped());
        assert_eq!(s.units(), (0..4).map(st).collect::<Vec<_>>(), "exact while within the cap");
        for i in 4..1000 {
            s.add(i as u32, st(i));
        }
        assert!(s.grouped());
        let units = s.units();
        assert!(units.len() <= 4);
        // Nothing lost: the groups add up to every image.
        let mut total = ImageStats::default();
        units.iter().for_each(|u| total.add(u));
        let mut want = ImageStats::default();
        (0..1000).map(st).for_each(|u| want.add(&u));
        assert_eq!(total, want);
        // Merging partial samples in order gives the same groups as one pass.
        let (mut a, mut b) = (ImageSample::new(4), ImageSample::new(4));
        (0..600).for_each(|i| a.add(i as u32, st(i)));
        (600..1000).for_each(|i| b.add(i as u32, st(i)));
        a.merge(b);
        assert_eq!(a.units(), units);
        let (mut c, mut d) = (ImageSample::new(4), ImageSample::new(4));
        (0..2).for_each(|i| c.add(i as u32, st(i)));
        (2..1000).for_each(|i| d.add(i as u32, st(i)));
        c.merge(d);
        assert_eq!(c.units(), units, "a small sample merged into a grouped one");
    }

    #[test]
    fn bootstrap_by_hand() {
        // Identical images: every draw gives the same value.
        let same = ImageStats { pairs: 4, changes: 1, abs: 0.5, labelled: 1, correct1: 1, jagged: 0, top5_dist: 0 };
        let b = bootstrap(&[same; 5], 200, 1);
        assert_eq!(b.p_top1_change, Some(Interval { lo: 0.25, hi: 0.25 }));
        assert_eq!(b.mac, Some(Interval { lo: 0.125, hi: 0.125 }));
        assert_eq!(b.acc1, Some(Interval { lo: 1.0, hi: 1.0 }));
        // Two images, one always changing, one never: a draw of two gives 0, .5 or 1
        // with probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1].
        let a = ImageStats { pairs: 2, changes: 2, ..same };
        let z = ImageStats { pairs: 2, changes: 0, ..same };
        let b = bootstrap(&[a, z], 2000, 7);
        assert_eq!(b.p_top1_change, Some(Interval { lo: 0.0, hi: 1.0 }));
        assert_eq!(bootstrap(&[a, z], 2000, 7), b, "seeded: reproducible");
        // Unlabelled images give no accuracy interval.
        let u = ImageStats { labelled: 0, correct1: 0, ..same };
        assert_eq!(bootstrap(&[u; 3], 100, 1).acc1, None);
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

    #[test]
    fn normalised_rates_by_hand() {
        // Two families; baseline FP .2 / .4, T5D 1 / 0 (no ratio for the second).
        let base = [(Some(0.2), Some(1.0)), (Some(0.4), Some(0.0))];
        let m = [(Some(0.1), Some(0.5)), (Some(0.6), Some(0.3))];
        let n = normalised(&m, &base);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(close(n.fr[0], 0.5) && close(n.fr[1], 1.5), "{:?}", n.fr);
        assert!(close(n.mfr, 1.0));
        assert_eq!(n.t5d, vec![Some(0.5), None]);
        assert_eq!(n.mt5d, Some(0.5));
        // The baseline against itself: 1 everywhere it has a value.
        assert_eq!(normalised(&base, &base).mfr, Some(1.0));
        assert_eq!(normalised(&[(None, None)], &base[..1]).mfr, None);
    }
}
