//! 95% percentile bootstrap intervals over images, in bounded memory.

use super::table::METRICS;
use super::totals::Totals;
use serde::{Deserialize, Serialize};

/// A two-sided percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// 95% bootstrap intervals of the metrics whose table entry asks for one, in
/// table order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Intervals(pub Vec<(&'static str, Option<Interval>)>);

impl Intervals {
    /// The interval of metric `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<Interval> {
        self.0.iter().find(|(n, _)| *n == name).and_then(|(_, i)| *i)
    }
}

/// The per-image totals a bootstrap resamples, in bounded memory: each
/// image's own up to `cap` images; past that, images are summed into `cap`
/// groups by a hash of their index, and the bootstrap resamples the groups.
/// Random groups of many images are independent and identically distributed,
/// so resampling them estimates the same variance as resampling images, while
/// memory and bootstrap time stay fixed however large the sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSample {
    cap: usize,
    exact: Vec<Totals>,
    images: Vec<u32>,
    groups: Option<Vec<Totals>>,
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
    pub fn add(&mut self, image: u32, s: Totals) {
        if self.groups.is_none() && self.exact.len() < self.cap {
            self.exact.push(s);
            self.images.push(image);
            return;
        }
        if self.groups.is_none() {
            let mut groups = vec![Totals::default(); self.cap];
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
    pub fn units(&self) -> Vec<Totals> {
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
/// replacement (seeded, so reports are reproducible); each metric with
/// `interval` in [`METRICS`] is recomputed from the draw's totals, and the 2.5th
/// and 97.5th percentiles kept. A metric undefined in more than half of the
/// draws gets no interval.
pub fn bootstrap(images: &[Totals], resamples: usize, seed: u64) -> Intervals {
    let chosen: Vec<_> = METRICS.iter().filter(|m| m.interval).collect();
    let n = images.len();
    if n == 0 || resamples == 0 {
        return Intervals(chosen.iter().map(|m| (m.name, None)).collect());
    }
    let mut rng = crate::rng::SplitMix(seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); chosen.len()];
    for _ in 0..resamples {
        let mut t = Totals::default();
        for _ in 0..n {
            t.add(&images[(rng.next_u64() % n as u64) as usize]);
        }
        for (m, d) in chosen.iter().zip(&mut draws) {
            if let Some(v) = (m.value)(&t) {
                d.push(v);
            }
        }
    }
    let interval = |mut v: Vec<f64>| -> Option<Interval> {
        if v.len() < resamples / 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let lo = ((0.025 * v.len() as f64).floor() as usize).min(v.len() - 1);
        let hi = (((0.975 * v.len() as f64).ceil() as usize).max(1) - 1).min(v.len() - 1);
        Some(Interval { lo: v[lo], hi: v[hi] })
    };
    Intervals(chosen.iter().zip(draws).map(|(m, v)| (m.name, interval(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sample_keeps_images_then_groups_them_in_fixed_memory() {
        let st =
            |i: u64| Totals { pairs: 2, top1_changes: i % 2, abs_diff: 0.25, labelled: 1, correct1: i % 3 / 2, top5_dist: i, ..Default::default() };
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
        let mut total = Totals::default();
        units.iter().for_each(|u| total.add(u));
        let mut want = Totals::default();
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
        let same = Totals { pairs: 4, top1_changes: 1, abs_diff: 0.5, labelled: 1, correct1: 1, ..Default::default() };
        let b = bootstrap(&[same; 5], 200, 1);
        assert_eq!(b.get("p_top1_change"), Some(Interval { lo: 0.25, hi: 0.25 }));
        assert_eq!(b.get("mac"), Some(Interval { lo: 0.125, hi: 0.125 }));
        assert_eq!(b.get("acc1"), Some(Interval { lo: 1.0, hi: 1.0 }));
        // Two images, one always changing, one never: a draw of two gives 0, .5 or 1
        // with probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1].
        let a = Totals { pairs: 2, top1_changes: 2, ..same };
        let z = Totals { pairs: 2, top1_changes: 0, ..same };
        let b = bootstrap(&[a, z], 2000, 7);
        assert_eq!(b.get("p_top1_change"), Some(Interval { lo: 0.0, hi: 1.0 }));
        assert_eq!(bootstrap(&[a, z], 2000, 7), b, "seeded: reproducible");
        // Unlabelled images give no accuracy interval.
        let u = Totals { labelled: 0, correct1: 0, ..same };
        assert_eq!(bootstrap(&[u; 3], 100, 1).get("acc1"), None);
        // Every metric that asks for an interval has a slot, in table order.
        let names: Vec<&str> = b.0.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, METRICS.iter().filter(|m| m.interval).map(|m| m.name).collect::<Vec<_>>());
    }
}
