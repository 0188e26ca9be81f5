//! Robust radius of `radius` sweeps: per image, the smallest L-infinity shift
//! (ring) at which the top-1 differs from the reference's, searched ring by ring
//! with early stop; images unchanged up to `max_radius` are censored (their
//! radius is larger). The table gives the distribution, the fraction of images
//! robust up to each radius, the median, and the inferences the early stop saved
//! against the full grid.

use jagged_artifacts::ResultRow;
use std::collections::BTreeMap;

/// What one image's rows say so far.
#[derive(Clone, Debug, Default, PartialEq)]
struct ImageRings {
    /// Top-1 at the reference point (from the first ring's part).
    reference: Option<i32>,
    /// Per ring searched, the distinct top-1 classes of its points.
    classes: BTreeMap<u32, Vec<i32>>,
}

/// What parts add to one (model, `radius` family) table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RadiusFold {
    images: BTreeMap<i32, ImageRings>,
    rows: u64,
}

impl RadiusFold {
    /// Adds a part's rows.
    pub fn add_rows(&mut self, rows: &[ResultRow]) {
        for r in rows {
            self.rows += 1;
            let im = self.images.entry(r.image_index).or_default();
            if r.is_reference {
                im.reference = Some(r.top1);
                continue;
            }
            let ring = r.dx.abs().max(r.dy.abs()).round() as u32;
            let c = im.classes.entry(ring).or_default();
            if !c.contains(&r.top1) {
                c.push(r.top1);
            }
        }
    }

    /// Adds another fold of the same model and family.
    pub fn merge(&mut self, other: RadiusFold) {
        self.rows += other.rows;
        for (i, o) in other.images {
            let im = self.images.entry(i).or_default();
            im.reference = im.reference.or(o.reference);
            for (ring, classes) in o.classes {
                let c = im.classes.entry(ring).or_default();
                for k in classes {
                    if !c.contains(&k) {
                        c.push(k);
                    }
                }
            }
        }
    }

    /// The table for a family searching up to `max_radius`.
    pub fn finish(self, model: &str, family_label: &str, max_radius: u32) -> RadiusTable {
        let mut radii = Vec::new();
        let mut per_image = Vec::new();
        let mut reruns = 0u64;
        for (&i, im) in &self.images {
            let Some(reference) = im.reference else { continue };
            let radius = im.classes.iter().find(|(_, c)| c.iter().any(|&k| k != reference)).map(|(&r, _)| r);
            radii.push(radius);
            per_image.push((i, radius));
            // Each ring after the first reran the reference for its pair metrics.
            reruns += im.classes.keys().max().map_or(0, |&m| m.saturating_sub(1)) as u64;
        }
        let n = radii.len() as u64;
        let mut distribution = vec![0u64; max_radius as usize + 1];
        for r in radii.iter().flatten() {
            if let Some(d) = distribution.get_mut(*r as usize) {
                *d += 1;
            }
        }
        let censored = radii.iter().filter(|r| r.is_none()).count() as u64;
        let survival = (0..=max_radius)
            .map(|r| if n == 0 { None } else { Some(radii.iter().filter(|x| x.is_none_or(|x| x > r)).count() as f64 / n as f64) })
            .collect();
        let median = {
            let mut sorted: Vec<u32> = radii.iter().map(|r| r.unwrap_or(max_radius + 1)).collect();
            sorted.sort_unstable();
            sorted.get(sorted.len().saturating_sub(1) / 2).copied().filter(|_| n > 0)
        };
        let side = 2 * max_radius as u64 + 1;
        RadiusTable {
            model: model.to_string(),
            family_label: family_label.to_string(),
            max_radius,
            images: n,
            distribution,
            censored,
            survival,
            median,
            inferences: self.rows + reruns,
            full_grid: n * side * side,
            radii: per_image,
        }
    }
}

/// One model's robust radii.
#[derive(Clone, Debug, PartialEq)]
pub struct RadiusTable {
    /// Model name.
    pub model: String,
    /// Family label.
    pub family_label: String,
    /// Largest ring searched.
    pub max_radius: u32,
    /// Images with a reference result.
    pub images: u64,
    /// Images whose radius is `r`, at index `r` (index 0 is always 0).
    pub distribution: Vec<u64>,
    /// Images whose top-1 did not change up to `max_radius`.
    pub censored: u64,
    /// Fraction of images whose top-1 is unchanged at every shift up to `r`
    /// (radius > r), at index `r`.
    pub survival: Vec<Option<f64>>,
    /// Median radius (the lower median); `max_radius + 1` when more than half
    /// are censored.
    pub median: Option<u32>,
    /// Inferences the search ran (rows, plus each later ring's rerun of the
    /// reference).
    pub inferences: u64,
    /// Inferences the full grid would take: `images x (2 max_radius + 1)^2`.
    pub full_grid: u64,
    /// Each image's radius (`None`: censored), by image index.
    pub radii: Vec<(i32, Option<u32>)>,
}

impl RadiusTable {
    /// The median as shown: a number, or `> max_radius`.
    pub fn median_label(&self) -> String {
        match self.median {
            Some(m) if m > self.max_radius => format!("> {}", self.max_radius),
            Some(m) => m.to_string(),
            None => "n/a".into(),
        }
    }

    /// The fraction of the full grid's inferences the early stop saved.
    pub fn saved(&self) -> Option<f64> {
        (self.full_grid > 0).then(|| 1.0 - self.inferences as f64 / self.full_grid as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(image: i32, dx: f32, dy: f32, top1: i32) -> ResultRow {
        crate::test_row("radius", image, dx, dy, top1)
    }

    /// The 8 points of ring `r` (as far as the test needs: its corners and edge
    /// midpoints), all with class `top1` except `(r, 0)` with `flip`.
    fn ring(image: i32, r: f32, top1: i32, flip: i32) -> Vec<ResultRow> {
        [(-r, -r), (0.0, -r), (r, -r), (-r, 0.0), (r, 0.0), (-r, r), (0.0, r), (r, r)]
            .into_iter()
            .map(|(dx, dy)| row(image, dx, dy, if (dx, dy) == (r, 0.0) { flip } else { top1 }))
            .collect()
    }

    #[test]
    fn radii_survival_median_and_savings_by_hand() {
        // max_radius 3. Image 0 flips at ring 1; image 1 at ring 3; image 2 never
        // (censored); image 3 flips at ring 1 on a class other than the label.
        let mut first = RadiusFold::default();
        let mut rows = vec![row(0, 0.0, 0.0, 5), row(1, 0.0, 0.0, 2), row(2, 0.0, 0.0, 7), row(3, 0.0, 0.0, 1)];
        rows.extend(ring(0, 1.0, 5, 6));
        rows.extend(ring(1, 1.0, 2, 2));
        rows.extend(ring(2, 1.0, 7, 7));
        rows.extend(ring(3, 1.0, 1, 9));
        first.add_rows(&rows);
        // Later rings (other parts), only for the images still unchanged.
        let mut later = RadiusFold::default();
        later.add_rows(&[ring(1, 2.0, 2, 2), ring(2, 2.0, 7, 7), ring(1, 3.0, 2, 4), ring(2, 3.0, 7, 7)].concat());
        later.merge(first);
        let t = later.finish("m", "radius", 3);
        assert_eq!(t.images, 4);
        assert_eq!(t.distribution, vec![0, 2, 0, 1]);
        assert_eq!(t.radii, vec![(0, Some(1)), (1, Some(3)), (2, None), (3, Some(1))]);
        assert_eq!(t.censored, 1);
        // Robust up to r: all at 0; images 1 and 2 past 1 and 2; only 2 past 3.
        assert_eq!(t.survival, vec![Some(1.0), Some(0.5), Some(0.5), Some(0.25)]);
        // Sorted radii 1, 1, 3, 4 (censored): the lower median is 1.
        assert_eq!((t.median, t.median_label()), (Some(1), "1".to_string()));
        // Rows: 4 references + 4 x 8 (ring 1) + 2 x 8 (ring 2) + 2 x 8 (ring 3) = 68;
        // reruns of the reference: images 1 and 2 at rings 2 and 3 = 4.
        assert_eq!(t.inferences, 72);
        assert_eq!(t.full_grid, 4 * 49);
        assert!((t.saved().unwrap() - (1.0 - 72.0 / 196.0)).abs() < 1e-12);
    }

    #[test]
    fn a_median_among_censored_images_reads_as_larger_than_the_search() {
        let mut f = RadiusFold::default();
        f.add_rows(&[vec![row(0, 0.0, 0.0, 1), row(1, 0.0, 0.0, 1)], ring(0, 1.0, 1, 1), ring(1, 1.0, 1, 1)].concat());
        let t = f.finish("m", "radius", 1);
        assert_eq!(t.censored, 2);
        assert_eq!(t.median_label(), "> 1");
        assert_eq!(t.survival, vec![Some(1.0), Some(1.0)]);
    }
}
