//! `jagged report`: aggregates a sweep's committed result parts into the
//! jaggedness table, bootstrap intervals, figures and a self-contained HTML page.
//!
//! - [`fold`]: what parts add to one (model, family) row ([`RowFold`]): the
//!   metric table's counters, per-image samples for the bootstrap, figure data.
//! - [`build`](mod@build): reads the committed parts (only those recorded in
//!   PostgreSQL's `outputs`, each checked against its SHA-256) a few at a time,
//!   folds them on all cores and merges in shard order, into a [`Report`].
//! - [`render`]: the report as tables ([`render::Table`]) written as CSV (the
//!   `csv` crate), Markdown and HTML (compiled `maud` templates), so escaping is
//!   the libraries' job.
//! - [`figures`]: SVG figures and their PNG rasterisation.
//! - [`layers`]: per-layer equivariance tables of `layers` families (the one
//!   place full rows are read: their `layers` column).
//! - [`radius`]: robust radii of `radius` families (full rows too: the top-1
//!   of every point searched).
//!
//! Every metric column comes from the one metric table,
//! [`jagged_domain::metrics::METRICS`]. Memory does not grow with the sweep: the
//! totals are counters, the figures keep one value per grid point and the first
//! images' traces, and the bootstrap keeps at most
//! [`SAMPLE_CAP`](jagged_domain::metrics::SAMPLE_CAP) units per row. Models'
//! subsampling structures were read once at submit; no graph is parsed here.
#![deny(missing_docs)]

pub mod build;
pub mod figures;
pub mod fold;
pub mod layers;
pub mod protocol;
pub mod radius;
pub mod render;

pub use build::{build, build_priced, build_with};
pub use fold::RowFold;

use jagged_domain::metrics::{Intervals, Normalised, Totals};
use jagged_domain::spec::{Published, Structure};
use jagged_store::SweepRow;

/// Report errors.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] jagged_store::StoreError),
    /// A part could not be read.
    #[error(transparent)]
    Artifact(#[from] jagged_artifacts::ArtifactError),
    /// A committed part does not match its checksum.
    #[error("result part `{0}` does not match its committed checksum")]
    Checksum(String),
    /// A committed part names a model or family the sweep does not have.
    #[error("result part `{0}` belongs to no model and family of its sweep")]
    Orphan(String),
    /// Writing the report failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Bootstrap resamples per table row.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// One table row: a model under a family.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    /// Model name.
    pub model: String,
    /// Family name.
    pub family: String,
    /// Family as shown in tables: the name, with its position (`diagonal[1]`)
    /// when the spec has several families of that kind.
    pub family_label: String,
    /// Index of the family in the spec.
    pub family_index: usize,
    /// The figures its family draws.
    pub figures: jagged_domain::transform::Figures,
    /// The model's weights are random (architecture only).
    pub untrained: bool,
    /// The model's subsampling structure (read at submit), if known.
    pub structure: Option<Structure>,
    /// The counters every metric is computed from.
    pub totals: Totals,
    /// 95% bootstrap intervals over images of the metrics that have them.
    pub intervals: Intervals,
}

impl TableRow {
    /// The value of metric `name` for this row (`None` where it does not apply
    /// or is undefined).
    pub fn metric(&self, name: &str) -> Option<f64> {
        jagged_domain::metrics::table::metric(name).and_then(|m| m.of(&self.family, &self.totals))
    }
}

/// An item that could not be processed, with where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Model name.
    pub model: String,
    /// Family name.
    pub family: String,
    /// Image (or sequence) name.
    pub image: String,
    /// Why.
    pub reason: String,
}

/// A sweep's report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The sweep's counters.
    pub sweep: SweepRow,
    /// One row per model x family, in spec order.
    pub rows: Vec<TableRow>,
    /// Failed items (and the items of failed shards).
    pub failures: Vec<Failure>,
    /// Published values to show beside ours, from the spec.
    pub published: Vec<Published>,
    /// Figure data per (model, family), same order as `rows`.
    pub figures: Vec<figures::FigureData>,
    /// Flip rates and top-5 distances relative to the spec's baseline model.
    pub normalised: Option<NormalisedTable>,
    /// Per-layer equivariance, one table per (model, `layers` family).
    pub layers: Vec<layers::LayerTable>,
    /// Robust radii, one table per (model, `radius` family).
    pub radius: Vec<radius::RadiusTable>,
    /// What the sweep's attempts spent, by model, worker and outcome.
    pub cost: Vec<jagged_domain::cost::SpentLine>,
    /// Prices per device-hour the cost is estimated with.
    pub prices: jagged_domain::cost::Prices,
    /// The sweep's model names, in spec order.
    pub models: Vec<String>,
    /// The protocol card ([`protocol::card`]).
    pub protocol: serde_json::Value,
}

/// mFR / mT5D: each model's flip probability and top-5 distance divided by the
/// baseline model's, per family, and their means over the families.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalisedTable {
    /// The baseline model.
    pub baseline: String,
    /// Labels of the families averaged.
    pub families: Vec<String>,
    /// Per model, its ratios.
    pub models: Vec<NormalisedModel>,
}

/// One model's row of a [`NormalisedTable`].
#[derive(Clone, Debug, PartialEq)]
pub struct NormalisedModel {
    /// Model name.
    pub model: String,
    /// Its ratios to the baseline.
    pub ratios: Normalised,
}

/// A result row for the folds' tests: image `image` of family `family` at
/// offset `(dx, dy)` (the reference at the origin) with top-1 `top1`.
#[cfg(test)]
pub(crate) fn test_row(family: &str, image: i32, dx: f32, dy: f32, top1: i32) -> jagged_artifacts::ResultRow {
    jagged_artifacts::ResultRow {
        sweep_id: 1,
        shard_id: 1,
        attempt: 1,
        model: "m".into(),
        family: family.into(),
        family_index: 0,
        image_index: image,
        image_name: format!("{image}"),
        label: None,
        point: 0,
        dx,
        dy,
        scale: 1.0,
        angle: 0.0,
        is_reference: dx == 0.0 && dy == 0.0,
        top1,
        top5_class: vec![],
        top5_prob: vec![],
        p_label: None,
        p_ref_top1: 0.0,
        fwd_pairs: 1,
        fwd_top1_changes: 0,
        fwd_abs_diff: 0.0,
        fwd_top5_transitions: 0,
        fwd_top5_dist: 0,
        provider: "cpu".into(),
        precision: "fp32".into(),
        render: "host".into(),
        probs: None,
        layers: None,
    }
}
