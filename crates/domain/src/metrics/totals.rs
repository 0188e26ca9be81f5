//! The counters every metric is computed from, and how one image's result rows
//! add to them.
//!
//! A report folds rows image by image ([`Totals::of_image`]) and adds the
//! images' totals ([`Totals::add`]) in any grouping: per part, per core, per
//! bootstrap group. Each metric of [`super::METRICS`] is a function of one
//! [`Totals`]; a metric that needs a new count adds one line to the list below
//! and its computation to [`Totals::of_image`].

/// Declares the counters once: the struct and its field-by-field addition.
macro_rules! counters {
    ($($(#[doc = $doc:expr])* $name:ident: $ty:ty,)*) => {
        /// Running totals of one (model, family), one image, or a group of images.
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Totals {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        impl Totals {
            /// Adds another image's, part's or group's totals.
            pub fn add(&mut self, o: &Totals) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

counters! {
    /// Result rows (inferences).
    inferences: u64,
    /// Reference rows: images that completed.
    images: u64,
    /// Labelled images.
    labelled: u64,
    /// Labelled images with the true class at top-1 of the reference point.
    correct1: u64,
    /// Labelled images with the true class in the top-5 of the reference point.
    correct5: u64,
    /// Neighbour pairs.
    pairs: u64,
    /// Pairs with a changed argmax.
    top1_changes: u64,
    /// Sum of |p_c(x) - p_c(x')| over pairs.
    abs_diff: f64,
    /// Sum over labelled images of their top-5 transitions.
    transitions: u64,
    /// Labelled images with at least one top-5 transition.
    jagged_images: u64,
    /// Labelled images correct at every grid point.
    worst_correct: u64,
    /// Sum of top-5 distances over pairs.
    top5_dist: u64,
    /// Images with at least one pair.
    paired_images: u64,
    /// Sum over images of their share of flipped pairs.
    image_flip_sum: f64,
    /// Sum over images of their mean top-5 distance.
    image_t5d_sum: f64,
    /// Items (images) that failed.
    failed_items: u64,
    /// Pairs of labelled images whose reference input is classified correctly.
    correct_pairs: u64,
    /// Of those, pairs with a changed argmax.
    correct_changes: u64,
    /// Pairs of labelled images whose reference input is classified wrongly.
    wrong_pairs: u64,
    /// Of those, pairs with a changed argmax.
    wrong_changes: u64,
}

/// One result row as the totals need it.
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

impl Totals {
    /// The totals of one image from all its rows (every grid point), so per-image
    /// counts (jaggedness, worst-of-grid, flip probability) are exact.
    pub fn of_image(rows: &[RowView<'_>]) -> Totals {
        let mut t = Totals::default();
        let mut transitions = 0u64;
        let mut labelled = false;
        let mut all_correct = true;
        for r in rows {
            all_correct &= r.label.is_some() && r.top5_class.first() == r.label.as_ref();
            t.inferences += 1;
            t.pairs += r.fwd_pairs as u64;
            t.top1_changes += r.fwd_top1_changes as u64;
            t.abs_diff += r.fwd_abs_diff;
            t.top5_dist += r.fwd_top5_dist as u64;
            transitions += r.fwd_top5_transitions as u64;
            if r.is_reference {
                t.images += 1;
                if let Some(l) = r.label {
                    labelled = true;
                    t.labelled += 1;
                    t.correct1 += (r.top5_class.first() == Some(&l)) as u64;
                    t.correct5 += r.top5_class.iter().take(5).any(|&c| c == l) as u64;
                }
            }
        }
        if labelled {
            t.transitions = transitions;
            t.jagged_images = (transitions > 0) as u64;
            t.worst_correct = all_correct as u64;
            if t.correct1 > 0 {
                (t.correct_pairs, t.correct_changes) = (t.pairs, t.top1_changes);
            } else {
                (t.wrong_pairs, t.wrong_changes) = (t.pairs, t.top1_changes);
            }
        }
        if t.pairs > 0 {
            t.paired_images = 1;
            t.image_flip_sum = t.top1_changes as f64 / t.pairs as f64;
            t.image_t5d_sum = t.top5_dist as f64 / t.pairs as f64;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::METRICS;

    /// A row: (image, label, is_reference, top5, pairs, changes, |diff|, transitions).
    type Row = (u32, Option<i32>, bool, Vec<i32>, u32, u32, f64, u32);

    #[allow(clippy::too_many_arguments)]
    fn row(image: u32, label: Option<i32>, is_ref: bool, top5: &[i32], pairs: u32, ch: u32, d: f64, t: u32) -> Row {
        (image, label, is_ref, top5.to_vec(), pairs, ch, d, t)
    }

    fn fold(images: &[Vec<Row>]) -> Totals {
        let mut s = Totals::default();
        for img in images {
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
            s.add(&Totals::of_image(&views));
        }
        s
    }

    fn value(name: &str, t: &Totals) -> Option<f64> {
        (METRICS.iter().find(|m| m.name == name).expect("a metric of the table").value)(t)
    }

    #[test]
    fn totals_and_metrics_by_hand() {
        // Image 0 (label 7): ref top-1 is 7; 2 pairs, 1 change, |diff| .5, 2 transitions.
        // Image 1 (label 3): ref top5 = [1,2,3,..]: wrong at top-1, right at top-5; 2 pairs, 0 changes, .1, 0 transitions.
        // Image 2 (unlabelled): 1 pair, 1 change, .3.
        let images = [
            vec![row(0, Some(7), true, &[7, 1, 2, 3, 4], 1, 1, 0.25, 1), row(0, Some(7), false, &[1, 7, 2, 3, 4], 1, 0, 0.25, 1)],
            vec![row(1, Some(3), true, &[1, 2, 3, 4, 5], 2, 0, 0.1, 0)],
            vec![row(2, None, true, &[0, 1, 2, 3, 4], 1, 1, 0.3, 0)],
        ];
        let s = fold(&images);
        assert_eq!((s.images, s.inferences), (3, 4));
        assert_eq!(value("acc1", &s), Some(0.5));
        assert_eq!(value("acc5", &s), Some(1.0));
        assert_eq!(value("p_top1_change", &s), Some(2.0 / 5.0));
        assert!((value("mac", &s).unwrap() - 0.9 / 5.0).abs() < 1e-12);
        assert_eq!(value("jagged_fraction", &s), Some(0.5));
        assert_eq!(value("mean_transitions", &s), Some(1.0));
        // Image 0 is wrong at its second point; image 1 wrong at its only point.
        assert_eq!(value("worst_acc", &s), Some(0.0));
        // Flip probability: per image 1/2, 0/2, 1/1 -> mean 0.5 (P(top-1 change) is 2/5).
        assert_eq!(value("flip_prob", &s), Some(0.5));
        // Top-5 distance (2 per change here): per image 2/2, 0/2, 2/1 -> mean 1.
        assert_eq!(value("top5_dist", &s), Some(1.0));
        assert_eq!(value("consistency", &s), Some(3.0 / 5.0));
        // Split by correctness: image 0 (right at the reference) has 1 change in 2
        // pairs, image 1 (wrong) none in 2; unlabelled image 2 is in neither.
        assert_eq!(value("p_top1_change_correct", &s), Some(0.5));
        assert_eq!(value("p_top1_change_wrong", &s), Some(0.0));
        let unlabelled = fold(&images[2..]);
        assert_eq!((value("p_top1_change_correct", &unlabelled), value("p_top1_change_wrong", &unlabelled)), (None, None));
        // Adding in another grouping changes the counts not at all, the sums of
        // floats only by rounding.
        let mut halves = fold(&images[..1]);
        halves.add(&fold(&images[1..]));
        assert!((halves.abs_diff - s.abs_diff).abs() < 1e-12);
        assert_eq!(Totals { abs_diff: s.abs_diff, ..halves }, s);
        assert_eq!(value("acc1", &Totals::default()), None);
    }
}
