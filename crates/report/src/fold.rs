//! What parts add to one (model, family) row.

use crate::figures::FigureData;
use crate::BOOTSTRAP_RESAMPLES;
use jagged_artifacts::{SummaryColumns, NO_LABEL};
use jagged_domain::metrics::{bootstrap, ImageSample, Intervals, RowView, Totals, SAMPLE_CAP};
use jagged_domain::spec::ImageRef;
use jagged_domain::transform::Family;

/// The running totals, the images for the bootstrap (bounded, [`ImageSample`])
/// and the figure data of one (model, family).
#[derive(Clone, Debug)]
pub struct RowFold {
    /// Totals.
    pub totals: Totals,
    /// Per-image totals for the bootstrap.
    pub images: ImageSample,
    /// Figure data.
    pub figure: FigureData,
}

impl RowFold {
    /// Empty, for a family.
    pub fn new(family: &Family) -> RowFold {
        let points = family.points().iter().map(|p| (p.dx, p.dy, p.scale, p.angle)).collect();
        RowFold { totals: Totals::default(), images: ImageSample::new(SAMPLE_CAP), figure: FigureData::for_points(points) }
    }

    /// Folds one part's rows (grouped by image, as workers write them); `items`
    /// name the images by index.
    pub fn add_part(&mut self, cols: &SummaryColumns, items: &[ImageRef]) {
        let mut views: Vec<RowView> = Vec::new();
        let n = cols.len();
        let mut start = 0;
        while start < n {
            let img = cols.image_index[start];
            let end = cols.image_index[start..].iter().position(|&i| i != img).map_or(n, |k| start + k);
            views.clear();
            views.extend((start..end).map(|r| RowView {
                image: img as u32,
                label: (cols.label[r] != NO_LABEL).then_some(cols.label[r]),
                is_reference: cols.is_reference[r],
                top5_class: &cols.top5[cols.top5_offsets[r]..cols.top5_offsets[r + 1]],
                fwd_pairs: cols.fwd_pairs[r] as u32,
                fwd_top1_changes: cols.fwd_top1_changes[r] as u32,
                fwd_abs_diff: cols.fwd_abs_diff[r],
                fwd_top5_transitions: cols.fwd_top5_transitions[r] as u32,
                fwd_top5_dist: cols.fwd_top5_dist[r] as u32,
            }));
            let image = Totals::of_image(&views);
            self.totals.add(&image);
            self.images.add(img as u32, image);
            let name = items.get(img as usize).map(|i| i.name.as_str()).unwrap_or("");
            self.figure.add_image(name, &cols.point[start..end], &cols.p_label[start..end]);
            start = end;
        }
    }

    /// Adds the folds of parts that come after this one's.
    pub fn merge(&mut self, o: RowFold) {
        self.totals.add(&o.totals);
        self.images.merge(o.images);
        self.figure.merge(o.figure);
    }

    /// The totals and the bootstrap intervals of the metrics that have them.
    pub fn finish(&self) -> (Totals, Intervals) {
        (self.totals, bootstrap(&self.images.units(), BOOTSTRAP_RESAMPLES, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jagged_domain::metrics::table::metric;

    /// Columns of `images` images x 3 points (diagonal, steps 2), with labels
    /// and changes chosen per image.
    fn part(images: std::ops::Range<i32>) -> SummaryColumns {
        let mut c = SummaryColumns { top5_offsets: vec![0], ..Default::default() };
        for img in images {
            for p in 0..3 {
                c.image_index.push(img);
                c.label.push(if img % 3 == 0 { NO_LABEL } else { 5 });
                c.is_reference.push(p == 0);
                let top1 = if (img + p) % 2 == 0 { 5 } else { 7 };
                c.top5.extend([top1, 1, 2, 3, if img % 4 == 0 { 5 } else { 4 }]);
                c.top5_offsets.push(c.top5.len());
                c.point.push(p);
                c.p_label.push(if img % 3 == 0 { f32::NAN } else { 0.25 * p as f32 });
                c.fwd_pairs.push((p < 2) as i32);
                c.fwd_top1_changes.push((p < 2) as i32);
                c.fwd_abs_diff.push(if p < 2 { 0.5 } else { 0.0 });
                c.fwd_top5_transitions.push((img % 5 == 0 && p == 0) as i32);
                c.fwd_top5_dist.push(if p < 2 { 2 } else { 0 });
            }
        }
        c
    }

    #[test]
    fn folding_parts_separately_and_merging_in_order_equals_one_fold() {
        let fam = Family::Diagonal(jagged_domain::transform::Diagonal {
            steps: Some(2),
            step: 1.0,
            from: None,
            to: None,
            base: Default::default(),
            resize: None,
            size: None,
            crop: Default::default(),
            background: Default::default(),
            resample: Default::default(),
        });
        let items: Vec<ImageRef> = (0..30).map(|i| ImageRef { name: format!("{i}.png"), key: String::new(), label: None, frames: vec![] }).collect();
        let mut whole = RowFold::new(&fam);
        whole.add_part(&part(0..30), &items);
        let mut a = RowFold::new(&fam);
        a.add_part(&part(0..11), &items);
        let mut b = RowFold::new(&fam);
        b.add_part(&part(11..30), &items);
        a.merge(b);
        assert_eq!(a.totals, whole.totals);
        assert_eq!(a.images, whole.images);
        assert_eq!((&a.figure.sum, &a.figure.count, a.figure.traces.len()), (&whole.figure.sum, &whole.figure.count, whole.figure.traces.len()));
        assert_eq!(a.finish(), whole.finish());
        // By hand: 20 labelled images; top-1 right at the reference for even ones.
        let (t, _) = whole.finish();
        let v = |name: &str| metric(name).and_then(|m| m.of("diagonal", &t));
        assert_eq!((t.images, t.inferences), (30, 90));
        assert_eq!(v("acc1"), Some(10.0 / 20.0));
        assert_eq!(v("p_top1_change"), Some(1.0));
        assert_eq!(v("mac"), Some(0.5));
        // Traces: the first labelled images by name, p(true class) per point.
        assert_eq!(whole.figure.traces[0], ("1.png".to_string(), vec![Some(0.0), Some(0.25), Some(0.5)]));
        assert_eq!(whole.figure.count, vec![20, 20, 20]);
    }
}
