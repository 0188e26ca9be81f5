//! The metric table: every metric of the report, declared once.
//!
//! The report's columns, its glossary, the bootstrap intervals, the metrics a
//! spec's `[[published]]` values may name, and the benchmark's comparison with
//! DuckDB all read [`METRICS`]. A metric is a function of [`Totals`]; adding one
//! is an entry here (and, if it needs a new count, a counter in
//! [`super::totals`]). Tests check that `docs/metrics.md`, the DuckDB bench's
//! SQL and the Python cross-check know every metric listed.

use super::totals::Totals;

/// What a metric averages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// Neighbour pairs (all pairs pooled).
    Pair,
    /// Images: a per-image value averaged over images.
    Image,
    /// Labelled images.
    LabelledImage,
}

impl Per {
    /// How the unit reads in the glossary.
    pub fn describe(self) -> &'static str {
        match self {
            Per::Pair => "per pair",
            Per::Image => "per image",
            Per::LabelledImage => "per labelled image",
        }
    }
}

/// How a value is written in tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A decimal with this many digits after the point.
    Fixed(usize),
}

impl Format {
    /// The value as written; `n/a` when there is none.
    pub fn show(self, v: Option<f64>) -> String {
        match (self, v) {
            (Format::Fixed(d), Some(x)) => format!("{x:.d$}"),
            (_, None) => "n/a".to_string(),
        }
    }
}

/// Which families a metric is reported for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Every family.
    All,
    /// Only the families of these kinds (`random_pairs`, ...).
    Only(&'static [&'static str]),
}

/// One metric of the report.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Column name in tables and result files; what `[[published]] metric` names.
    pub name: &'static str,
    /// One-line definition, shown in the report's glossary.
    pub definition: &'static str,
    /// What it averages over.
    pub per: Per,
    /// How it is written.
    pub format: Format,
    /// The families it is reported for (`n/a` elsewhere).
    pub applies: Applies,
    /// Whether the report gives a 95% bootstrap interval over images.
    pub interval: bool,
    /// Its value from a (model, family)'s totals; `None` when undefined (no
    /// labelled images, no pairs).
    pub value: fn(&Totals) -> Option<f64>,
}

impl Metric {
    /// Whether the metric is reported for a family of kind `family`.
    pub fn applies_to(&self, family: &str) -> bool {
        match self.applies {
            Applies::All => true,
            Applies::Only(kinds) => kinds.contains(&family),
        }
    }

    /// The metric for a family of kind `family` with totals `t`: `None` where it
    /// does not apply or is undefined.
    pub fn of(&self, family: &str, t: &Totals) -> Option<f64> {
        if self.applies_to(family) {
            (self.value)(t)
        } else {
            None
        }
    }

    /// The value as written in tables.
    pub fn show(&self, v: Option<f64>) -> String {
        self.format.show(v)
    }
}

fn ratio(n: f64, d: u64) -> Option<f64> {
    (d > 0).then(|| n / d as f64)
}

/// Every metric, in table order.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "acc1",
        definition: "top-1 accuracy at the reference (centred) input, over labelled images",
        per: Per::LabelledImage,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: true,
        value: |t| ratio(t.correct1 as f64, t.labelled),
    },
    Metric {
        name: "acc5",
        definition: "top-5 accuracy at the reference input, over labelled images",
        per: Per::LabelledImage,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.correct5 as f64, t.labelled),
    },
    Metric {
        name: "p_top1_change",
        definition: "fraction of neighbour pairs whose top-1 differs (Azulay & Weiss, Table 1)",
        per: Per::Pair,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: true,
        value: |t| ratio(t.top1_changes as f64, t.pairs),
    },
    Metric {
        name: "p_top1_change_correct",
        definition: "p_top1_change over the pairs of labelled images whose reference input is classified correctly",
        per: Per::Pair,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.correct_changes as f64, t.correct_pairs),
    },
    Metric {
        name: "p_top1_change_wrong",
        definition: "p_top1_change over the pairs of labelled images whose reference input is misclassified",
        per: Per::Pair,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.wrong_changes as f64, t.wrong_pairs),
    },
    Metric {
        name: "mac",
        definition: "mean over pairs of |p_c(x) - p_c(x')|, with c the top-1 class of the first",
        per: Per::Pair,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: true,
        value: |t| ratio(t.abs_diff, t.pairs),
    },
    Metric {
        name: "jagged_fraction",
        definition: "labelled images whose true class enters or leaves the top-5 between some pair of neighbours",
        per: Per::LabelledImage,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: true,
        value: |t| ratio(t.jagged_images as f64, t.labelled),
    },
    Metric {
        name: "mean_transitions",
        definition: "top-5 entries and exits of the true class between neighbours, averaged over labelled images",
        per: Per::LabelledImage,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.transitions as f64, t.labelled),
    },
    Metric {
        name: "worst_acc",
        definition: "labelled images whose top-1 is right at every point of the grid (Engstrom et al.)",
        per: Per::LabelledImage,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.worst_correct as f64, t.labelled),
    },
    Metric {
        name: "flip_prob",
        definition: "per image, the share of its pairs whose top-1 differs, averaged over images (ImageNet-P)",
        per: Per::Image,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.image_flip_sum, t.paired_images),
    },
    Metric {
        name: "top5_dist",
        definition: "per image, the mean ImageNet-P top-5 distance between the rankings of its pairs, averaged over images",
        per: Per::Image,
        format: Format::Fixed(4),
        applies: Applies::All,
        interval: false,
        value: |t| ratio(t.image_t5d_sum, t.paired_images),
    },
    Metric {
        name: "consistency",
        definition: "fraction of random crop pairs with the same top-1 (Zhang)",
        per: Per::Pair,
        format: Format::Fixed(4),
        applies: Applies::Only(&["random_pairs"]),
        interval: false,
        value: |t| ratio(t.top1_changes as f64, t.pairs).map(|p| 1.0 - p),
    },
];

/// The metric named `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The names of every metric, comma-separated (for messages).
pub fn names() -> String {
    METRICS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lookups_find_them() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "`{}` is listed twice", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", m.name);
            assert!(!m.definition.is_empty() && !m.definition.ends_with('.'), "{}", m.name);
            assert_eq!(metric(m.name).map(|x| x.name), Some(m.name));
        }
        assert!(metric("nonsense").is_none());
    }

    #[test]
    fn family_restrictions_and_formats() {
        let t = Totals { pairs: 4, top1_changes: 1, ..Default::default() };
        let c = metric("consistency").unwrap();
        assert_eq!(c.of("random_pairs", &t), Some(0.75));
        assert_eq!(c.of("crop", &t), None);
        assert_eq!(c.show(c.of("random_pairs", &t)), "0.7500");
        assert_eq!(c.show(None), "n/a");
    }
}
