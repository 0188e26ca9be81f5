//! `jagged report`: aggregates a sweep's committed result parts into the
//! jaggedness table, bootstrap intervals, figures ([`figures`]) and a
//! self-contained HTML page.
//!
//! Only parts recorded in PostgreSQL's `outputs` count (files of abandoned or
//! stale attempts are never read), and each is checked against its committed
//! SHA-256 before use. Parts are read a few at a time (only the columns the
//! summary needs), folded on all cores into one [`RowFold`] per (model,
//! family) and merged in shard order. Memory does not grow with the sweep: the
//! totals are counters, the figures keep one value per grid point and the first
//! images' traces, and the bootstrap keeps at most [`SAMPLE_CAP`] units per row.
#![deny(missing_docs)]

pub mod figures;

use futures::StreamExt;
use jagged_artifacts::{SummaryColumns, NO_LABEL};
use jagged_domain::metrics::{bootstrap, normalised, ImageSample, Intervals, Normalised, RowView, Summary, SummaryRow, SAMPLE_CAP};
use jagged_domain::spec::ImageRef;
use jagged_domain::transform::Family;
use jagged_store::{Store, SweepRow};
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

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
    /// Writing the report failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

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
    /// The model's weights are random (architecture only).
    pub untrained: bool,
    /// The model's cumulative subsampling factor (`jagged inspect`).
    pub subsampling: i64,
    /// Subsampling ops preceded by a low-pass filter, of all.
    pub blurred: (usize, usize),
    /// Metrics.
    pub metrics: SummaryRow,
    /// 95% bootstrap intervals over images of the headline metrics.
    pub intervals: Intervals,
}

/// Bootstrap resamples per table row.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// A sweep's report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The sweep's counters.
    pub sweep: SweepRow,
    /// One row per model x family, in spec order.
    pub rows: Vec<TableRow>,
    /// Failed items: model, family, image, reason.
    pub failures: Vec<(String, String, String, String)>,
    /// Published values to show beside ours, from the spec.
    pub published: Vec<jagged_domain::spec::Published>,
    /// Figure data per (model, family) index, same order as `rows`.
    pub figures: Vec<figures::FigureData>,
    /// Flip rates and top-5 distances relative to the spec's baseline model.
    pub normalised: Option<NormalisedTable>,
}

/// mFR / mT5D: each model's flip probability and top-5 distance divided by the
/// baseline model's, per family, and their means over the families.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalisedTable {
    /// The baseline model.
    pub baseline: String,
    /// Labels of the families averaged.
    pub families: Vec<String>,
    /// Per model: its name and ratios.
    pub models: Vec<(String, Normalised)>,
}

/// What parts add to one (model, family) row: the running totals, the images
/// for the bootstrap (bounded, [`ImageSample`]) and the figure data.
#[derive(Clone, Debug)]
pub struct RowFold {
    /// Totals.
    pub summary: Summary,
    /// Per-image statistics for the bootstrap.
    pub images: ImageSample,
    /// Figure data.
    pub figure: figures::FigureData,
}

impl RowFold {
    /// Empty, for a family.
    pub fn new(family: &Family) -> RowFold {
        let points = family.points().iter().map(|p| (p.dx, p.dy, p.scale, p.angle)).collect();
        RowFold { summary: Summary::default(), images: ImageSample::new(SAMPLE_CAP), figure: figures::FigureData::for_points(points) }
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
            let stats = self.summary.add_image(&views);
            self.images.add(img as u32, stats);
            let name = items.get(img as usize).map(|i| i.name.as_str()).unwrap_or("");
            self.figure.add_image(name, &cols.point[start..end], &cols.p_label[start..end]);
            start = end;
        }
    }

    /// Adds the folds of parts that come after this one's.
    pub fn merge(&mut self, o: RowFold) {
        self.summary.merge(&o.summary);
        self.images.merge(o.images);
        self.figure.merge(o.figure);
    }

    /// The finished metrics and their bootstrap intervals.
    pub fn finish(&self) -> (SummaryRow, Intervals) {
        (self.summary.finish(), bootstrap(&self.images.units(), BOOTSTRAP_RESAMPLES, 0))
    }
}

/// Builds the report of a sweep from its committed parts, reading and folding
/// parts on all cores.
pub async fn build(store: &Store, objects: &dyn ObjectStore, sweep_id: i64) -> Result<Report, ReportError> {
    build_with(store, objects, sweep_id, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).await
}

/// [`build`] with `threads` parts read and folded at a time. Parts are folded
/// independently and merged in shard order, so the result does not depend on
/// `threads`.
pub async fn build_with(store: &Store, objects: &dyn ObjectStore, sweep_id: i64, threads: usize) -> Result<Report, ReportError> {
    let sweep = store.sweep(sweep_id).await?;
    let resolved = std::sync::Arc::new(store.resolved(sweep_id).await?);
    let outputs = store.outputs(sweep_id).await?;
    let mut folds: BTreeMap<(usize, usize), RowFold> = BTreeMap::new();
    for m in 0..resolved.models.len() {
        for (f, fam) in resolved.spec.families.iter().enumerate() {
            folds.insert((m, f), RowFold::new(fam));
        }
    }
    let mut parts = futures::stream::iter(outputs.into_iter().map(|o| {
        let resolved = resolved.clone();
        async move {
            let bytes = jagged_artifacts::get(objects, &o.object_key).await?;
            let key = (o.model_idx as usize, o.family_idx as usize);
            let fold = tokio::task::spawn_blocking(move || {
                if jagged_artifacts::sha256_hex(&bytes) != o.sha256 {
                    return Err(ReportError::Checksum(o.object_key.clone()));
                }
                let cols = jagged_artifacts::decode_summary(bytes)?;
                let family = resolved.spec.families.get(key.1).ok_or_else(|| ReportError::Checksum(o.object_key.clone()))?;
                let mut fold = RowFold::new(family);
                fold.add_part(&cols, resolved.items(key.1));
                Ok(fold)
            })
            .await
            .map_err(|e| ReportError::Io("folding a part".into(), std::io::Error::other(e.to_string())))??;
            Ok::<_, ReportError>((key, fold))
        }
    }))
    .buffered(threads.max(1));
    while let Some(part) = parts.next().await {
        let (key, fold) = part?;
        match folds.get_mut(&key) {
            Some(f) => f.merge(fold),
            None => {
                folds.insert(key, fold);
            }
        }
    }
    let mut failures = Vec::new();
    let name = |m: usize, f: usize| {
        (
            resolved.models.get(m).map(|x| x.name.clone()).unwrap_or_default(),
            resolved.spec.families.get(f).map(|x| x.name().to_string()).unwrap_or_default(),
        )
    };
    for f in store.failed_items(sweep_id).await? {
        let key = (f.model_idx as usize, f.family_idx as usize);
        if let Some(f) = folds.get_mut(&key) {
            f.summary.failed_items += 1;
        }
        let (m, fam) = name(key.0, key.1);
        failures.push((m, fam, f.item.image_name, f.item.reason));
    }
    for s in store.shard_errors(sweep_id, i64::MAX).await? {
        let key = (s.model_idx as usize, s.family_idx as usize);
        if let Some(f) = folds.get_mut(&key) {
            f.summary.failed_items += (s.image_hi - s.image_lo) as u64;
        }
        let (m, fam) = name(key.0, key.1);
        for i in s.image_lo..s.image_hi {
            let img = resolved.items(key.1).get(i as usize).map(|x| x.name.clone()).unwrap_or_default();
            failures.push((m.clone(), fam.clone(), img, format!("shard {} failed: {}", s.shard_id, s.error)));
        }
    }
    // Each model's sampling structure, read from its stored ONNX file.
    let mut structure = Vec::new();
    for m in &resolved.models {
        let bytes = jagged_artifacts::get(objects, &m.key).await?;
        let i = jagged_onnx::inspect::inspect(&bytes).ok();
        structure.push(i.map(|i| (i.factor, (i.subsampling.iter().filter(|s| s.blurred).count(), i.subsampling.len()))).unwrap_or((0, (0, 0))));
    }
    let figure_data: Vec<figures::FigureData> = folds.values().map(|f| f.figure.clone()).collect();
    let rows = folds
        .into_iter()
        .map(|((m, f), fold)| {
            let (model, family) = name(m, f);
            let untrained = resolved.models.get(m).is_some_and(|x| x.card.untrained);
            let (subsampling, blurred) = structure.get(m).copied().unwrap_or((0, (0, 0)));
            let (metrics, intervals) = fold.finish();
            let repeated = resolved.spec.families.iter().filter(|x| x.name() == family).count() > 1;
            let family_label = match &resolved.spec.families[f] {
                // Sequences are told apart by their folder (ImageNet-P: the perturbation).
                jagged_domain::transform::Family::Sequence { path, .. } => {
                    let folder = Path::new(path).file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
                    let same = resolved.spec.families.iter().filter(|x| matches!(x, jagged_domain::transform::Family::Sequence { path: p, .. } if Path::new(p).file_name() == Path::new(path).file_name())).count();
                    if same > 1 || folder.is_empty() { format!("sequence[{f}]") } else { format!("sequence:{folder}") }
                }
                _ if repeated => format!("{family}[{f}]"),
                _ => family.clone(),
            };
            TableRow { model, family, family_label, family_index: f, untrained, subsampling, blurred, metrics, intervals }
        })
        .collect::<Vec<TableRow>>();
    let normalised = resolved.spec.metrics.baseline.as_ref().map(|b| normalised_table(&resolved, &rows, b));
    Ok(Report { sweep, rows, failures, published: resolved.spec.published.clone(), figures: figure_data, normalised })
}

/// The mFR / mT5D table over the families the spec selects (default: all but
/// `random_pairs`).
fn normalised_table(resolved: &jagged_domain::spec::ResolvedSweep, rows: &[TableRow], baseline: &str) -> NormalisedTable {
    let fams = &resolved.spec.families;
    let chosen: Vec<usize> = (0..fams.len())
        .filter(|&f| match &resolved.spec.metrics.families {
            Some(sel) => sel.iter().any(|s| jagged_domain::spec::selects(s, fams, f)),
            None => !matches!(fams[f], jagged_domain::transform::Family::RandomPairs { .. }),
        })
        .collect();
    let values = |model: &str| -> Vec<(Option<f64>, Option<f64>)> {
        chosen
            .iter()
            .map(|&f| {
                rows.iter()
                    .find(|r| r.model == model && r.family_index == f)
                    .map(|r| (r.metrics.flip_prob, r.metrics.top5_dist))
                    .unwrap_or((None, None))
            })
            .collect()
    };
    let base = values(baseline);
    let families = chosen.iter().map(|&f| rows.iter().find(|r| r.family_index == f).map(|r| r.family_label.clone()).unwrap_or_default()).collect();
    let models = resolved.models.iter().map(|m| (m.name.clone(), normalised(&values(&m.name), &base))).collect();
    NormalisedTable { baseline: baseline.to_string(), families, models }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x)).unwrap_or_else(|| "n/a".into())
}

impl NormalisedTable {
    /// Header and rows: model, mFR, mT5D, then FR and T5D ratio per family, each
    /// value written by `fmt`.
    fn table(&self, fmt: fn(Option<f64>) -> String) -> (Vec<String>, Vec<Vec<String>>) {
        let mut head = vec!["model".to_string(), "mFR".into(), "mT5D".into()];
        head.extend(self.families.iter().map(|f| format!("FR {f}")));
        head.extend(self.families.iter().map(|f| format!("T5D {f}")));
        let rows = self
            .models
            .iter()
            .map(|(m, n)| {
                let mut r = vec![m.clone(), fmt(n.mfr), fmt(n.mt5d)];
                r.extend(n.fr.iter().map(|v| fmt(*v)));
                r.extend(n.t5d.iter().map(|v| fmt(*v)));
                r
            })
            .collect();
        (head, rows)
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "n/a".into())
}

const HEADER: [&str; 17] = [
    "model",
    "family",
    "images",
    "inferences",
    "failed_items",
    "acc1",
    "acc5",
    "p_top1_change",
    "mac",
    "jagged_fraction",
    "mean_transitions",
    "worst_acc",
    "flip_prob",
    "top5_dist",
    "consistency",
    "subsampling",
    "blurred",
];

fn cells(r: &TableRow) -> [String; 17] {
    let m = &r.metrics;
    [
        if r.untrained { format!("{} (untrained)", r.model) } else { r.model.clone() },
        r.family_label.clone(),
        m.images.to_string(),
        m.inferences.to_string(),
        m.failed_items.to_string(),
        num(m.acc1),
        num(m.acc5),
        num(m.p_top1_change),
        num(m.mac),
        num(m.jagged_fraction),
        num(m.mean_transitions),
        num(m.worst_of_grid_acc),
        num(m.flip_prob),
        num(m.top5_dist),
        num(if r.family == "random_pairs" { m.p_top1_change.map(|p| 1.0 - p) } else { None }),
        r.subsampling.to_string(),
        format!("{}/{}", r.blurred.0, r.blurred.1),
    ]
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const CI_HEADER: [&str; 8] =
    ["acc1_lo", "acc1_hi", "p_top1_change_lo", "p_top1_change_hi", "mac_lo", "mac_hi", "jagged_fraction_lo", "jagged_fraction_hi"];

fn ci_cells(r: &TableRow) -> Vec<String> {
    let i = &r.intervals;
    [i.acc1, i.p_top1_change, i.mac, i.jagged_fraction].iter().flat_map(|v| [num(v.map(|x| x.lo)), num(v.map(|x| x.hi))]).collect()
}

impl Report {
    /// The table as CSV, with the bootstrap interval bounds as extra columns.
    pub fn csv(&self) -> String {
        let mut out = HEADER.iter().chain(CI_HEADER.iter()).copied().collect::<Vec<_>>().join(",") + "\n";
        for r in &self.rows {
            out += &cells(r).into_iter().chain(ci_cells(r)).map(|c| csv_field(&c)).collect::<Vec<_>>().join(",");
            out.push('\n');
        }
        out
    }

    /// The table as Markdown.
    pub fn markdown_table(&self) -> String {
        let mut out = format!("| {} |\n|{}|\n", HEADER.join(" | "), HEADER.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        for r in &self.rows {
            out += &format!("| {} |\n", cells(r).join(" | "));
        }
        out
    }

    /// The full Markdown report.
    pub fn markdown(&self) -> String {
        let s = &self.sweep;
        let mut out = String::new();
        let _ = writeln!(out, "# Sweep {}: {}\n", s.id, s.name);
        let _ = writeln!(
            out,
            "State `{}`; shards {} done, {} failed, {} cancelled of {}; {} inferences.\n",
            s.state, s.done, s.failed, s.cancelled, s.total, s.inferences_done
        );
        out += &self.markdown_table();
        out += "\nacc1/acc5: accuracy at the reference (centred) input over labelled images. \
p_top1_change: fraction of neighbour pairs whose top-1 differs. mac: mean over pairs of \
|p_c(x) - p_c(x')| with c the top-1 of the first. jagged_fraction: labelled images whose true \
class enters or leaves the top-5 between some pair of neighbours; mean_transitions: such \
transitions per labelled image. worst_acc: labelled images whose top-1 is right at every \
point of the grid. flip_prob (ImageNet-P): per image, the share of its pairs whose \
top-1 differs, averaged over images; top5_dist: per image, the mean ImageNet-P top-5 distance \
between the rankings of its pairs, averaged over images. consistency (random_pairs, Zhang): fraction of random crop pairs with \
the same top-1. subsampling: the model's cumulative subsampling factor; blurred: its \
subsampling ops preceded by a low-pass filter, of all (`jagged inspect`). Models marked \
untrained have random weights: their numbers measure the architecture only. n/a: no \
labelled images or no pairs.\n";
        let _ = writeln!(
            out,
            "\n## 95% bootstrap intervals\n\n{BOOTSTRAP_RESAMPLES} resamples of the images (seed 0).\n\n\
             | model | family | acc1 | p_top1_change | mac | jagged_fraction |\n|---|---|---|---|---|---|"
        );
        for r in &self.rows {
            let c = ci_cells(r);
            let _ = writeln!(
                out,
                "| {} | {} | [{}, {}] | [{}, {}] | [{}, {}] | [{}, {}] |",
                r.model, r.family_label, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
            );
        }
        if let Some(n) = &self.normalised {
            let (head, rows) = n.table(pct);
            let _ = writeln!(
                out,
                "\n## Flip rate and top-5 distance relative to {}\n\n\
                 FR = flip_prob / the baseline's on the same family, T5D likewise with top5_dist; \
                 mFR and mT5D are their means over the families (ImageNet-P's mFR / mT5D, with this \
                 sweep's baseline in place of AlexNet).\n\n| {} |\n|{}|",
                n.baseline,
                head.join(" | "),
                head.iter().map(|_| "---").collect::<Vec<_>>().join("|")
            );
            for r in rows {
                let _ = writeln!(out, "| {} |", r.join(" | "));
            }
        }
        if !self.published.is_empty() {
            out += "\n## Published values beside ours\n\n\
                    Other models and data: a comparison of magnitude, not a reproduction of the same numbers.\n\n\
                    | family | metric | published model | published | source | ours |\n|---|---|---|---|---|---|\n";
            for c in self.published_rows() {
                let _ = writeln!(out, "| {} |", c.join(" | "));
            }
        }
        if !self.failures.is_empty() {
            out += "\n## Failed items\n\n| model | family | image | reason |\n|---|---|---|---|\n";
            for (m, f, i, r) in &self.failures {
                let _ = writeln!(out, "| {m} | {f} | {i} | {} |", r.replace('|', "\\|").replace('\n', " "));
            }
        }
        out
    }

    /// The published values beside ours: family, metric, model, value, source, ours.
    fn published_rows(&self) -> Vec<[String; 6]> {
        let mut rows = Vec::new();
        {
            for p in &self.published {
                let ours: Vec<String> = self
                    .rows
                    .iter()
                    .filter(|r| match p.family.strip_prefix("families[").and_then(|s| s.strip_suffix(']')) {
                        Some(i) => i.parse() == Ok(r.family_index),
                        None => r.family == p.family,
                    })
                    .filter_map(|r| {
                        let m = &r.metrics;
                        let v = match p.metric.as_str() {
                            "acc1" => m.acc1,
                            "acc5" => m.acc5,
                            "p_top1_change" => m.p_top1_change,
                            "mac" => m.mac,
                            "jagged_fraction" => m.jagged_fraction,
                            "consistency" => m.p_top1_change.map(|x| 1.0 - x),
                            "flip_prob" => m.flip_prob,
                            "top5_dist" => m.top5_dist,
                            _ => None,
                        };
                        v.map(|v| format!("{}: {v:.3}", r.model))
                    })
                    .collect();
                rows.push([
                    p.family.clone(),
                    p.metric.clone(),
                    p.model.clone(),
                    format!("{:.3}", p.value),
                    p.source.clone(),
                    if ours.is_empty() { "n/a".to_string() } else { ours.join("; ") },
                ]);
            }
        }
        rows
    }

    /// Every figure as (file stem, SVG text).
    pub fn figures(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let slug = |s: &str| {
            s.chars().filter(|c| *c != ']').map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>()
        };
        for (r, d) in self.rows.iter().zip(&self.figures) {
            if r.family == "random_pairs" {
                continue;
            }
            let stem = format!("{}__{}", slug(&r.model), slug(&r.family_label));
            let what = format!("{}, {}", r.model, r.family_label);
            if let Some(s) = figures::heatmap(&format!("p(true class) per image: {what}"), d, &r.family) {
                out.push((format!("{stem}__heatmap"), s));
            }
            if matches!(r.family.as_str(), "diagonal" | "scale" | "rotate" | "sequence") {
                if let Some(s) = figures::traces(&format!("p(true class) along the transformation: {what}"), d, &r.family) {
                    out.push((format!("{stem}__traces"), s));
                }
            }
            if matches!(r.family.as_str(), "crop" | "embed" | "circular") {
                if let Some(s) = figures::grid_map(&format!("mean p(true class) over offsets: {what}"), d) {
                    out.push((format!("{stem}__map"), s));
                }
            }
        }
        let bars = |f: &dyn Fn(&SummaryRow) -> Option<f64>| -> Vec<(String, String, Option<f64>)> {
            self.rows.iter().map(|r| (r.model.clone(), r.family_label.clone(), f(&r.metrics))).collect()
        };
        if let Some(s) = figures::bars("P(top-1 change) per model and family", "P(top-1 change)", &bars(&|m| m.p_top1_change)) {
            out.push(("bars_p_top1_change".into(), s));
        }
        if let Some(s) = figures::bars("Jagged images per model and family", "fraction of jagged images", &bars(&|m| m.jagged_fraction)) {
            out.push(("bars_jagged_fraction".into(), s));
        }
        out
    }

    /// A self-contained HTML page: tables and inline figures.
    pub fn html(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let s = &self.sweep;
        let mut out = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jagged report: sweep {id}</title>\n\
             <style>body{{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}}\
             table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}\
             th{{background:#f0f0f0}}td:nth-child(-n+2){{text-align:left}}figure{{display:inline-block;margin:8px}}</style></head><body>\n\
             <h1>Sweep {id}: {name}</h1>\n<p>State <b>{state}</b>; shards {done} done, {failed} failed, {cancelled} cancelled of {total}; {inf} inferences.</p>\n",
            id = s.id,
            name = esc(&s.name),
            state = esc(&s.state),
            done = s.done,
            failed = s.failed,
            cancelled = s.cancelled,
            total = s.total,
            inf = s.inferences_done
        );
        out += "<table><tr>";
        for h in HEADER {
            let _ = write!(out, "<th>{h}</th>");
        }
        out += "</tr>\n";
        for r in &self.rows {
            out += "<tr>";
            for c in cells(r) {
                let _ = write!(out, "<td>{}</td>", esc(&c));
            }
            out += "</tr>\n";
        }
        out += "</table>\n<h2>95% bootstrap intervals</h2>\n<table><tr><th>model</th><th>family</th><th>acc1</th><th>p_top1_change</th><th>mac</th><th>jagged_fraction</th></tr>\n";
        for r in &self.rows {
            let c = ci_cells(r);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>[{}, {}]</td><td>[{}, {}]</td><td>[{}, {}]</td><td>[{}, {}]</td></tr>",
                esc(&r.model),
                esc(&r.family_label),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6],
                c[7]
            );
        }
        out += "</table>\n";
        if let Some(n) = &self.normalised {
            let (head, rows) = n.table(pct);
            let _ = write!(out, "<h2>Flip rate and top-5 distance relative to {}</h2>\n<table><tr>", esc(&n.baseline));
            for h in head {
                let _ = write!(out, "<th>{}</th>", esc(&h));
            }
            out += "</tr>\n";
            for r in rows {
                out += "<tr>";
                for c in r {
                    let _ = write!(out, "<td>{}</td>", esc(&c));
                }
                out += "</tr>\n";
            }
            out += "</table>\n";
        }
        if !self.published.is_empty() {
            out += "<h2>Published values beside ours</h2>\n<p>Other models and data: a comparison of magnitude, not a \
                    reproduction of the same numbers.</p>\n<table><tr><th>family</th><th>metric</th><th>published model</th>\
                    <th>published</th><th>source</th><th>ours</th></tr>\n";
            for c in self.published_rows() {
                out += "<tr>";
                for x in c {
                    let _ = write!(out, "<td>{}</td>", esc(&x));
                }
                out += "</tr>\n";
            }
            out += "</table>\n";
        }
        out += "<h2>Figures</h2>\n";
        for (name, svg) in self.figures() {
            let _ = writeln!(out, "<figure>{svg}<figcaption>{}</figcaption></figure>", esc(&name));
        }
        if !self.failures.is_empty() {
            out += "<h2>Failed items</h2>\n<table><tr><th>model</th><th>family</th><th>image</th><th>reason</th></tr>\n";
            for (m, f, i, r) in &self.failures {
                let _ = writeln!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(m), esc(f), esc(i), esc(r));
            }
            out += "</table>\n";
        }
        out += "</body></html>\n";
        out
    }

    /// Writes `summary.csv`, `summary.md`, `failed_items.csv`, `report.html` and
    /// `figures/*.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let io = |p: &Path, e| ReportError::Io(p.display().to_string(), e);
        std::fs::create_dir_all(dir.join("figures")).map_err(|e| io(dir, e))?;
        for (name, svg) in self.figures() {
            let p = dir.join("figures").join(format!("{name}.svg"));
            std::fs::write(&p, &svg).map_err(|e| io(&p, e))?;
            let png = figures::png(&svg).map_err(|e| ReportError::Io(name.clone(), std::io::Error::other(e)))?;
            let p = dir.join("figures").join(format!("{name}.png"));
            std::fs::write(&p, png).map_err(|e| io(&p, e))?;
        }
        let p = dir.join("report.html");
        std::fs::write(&p, self.html()).map_err(|e| io(&p, e))?;
        let files = [
            ("summary.csv", self.csv()),
            ("summary.md", self.markdown()),
            (
                "failed_items.csv",
                std::iter::once("model,family,image,reason".to_string())
                    .chain(self.failures.iter().map(|(m, f, i, r)| [m, f, i, r].map(|x| csv_field(x)).join(",")))
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n",
            ),
        ];
        let mut files = files.to_vec();
        if let Some(n) = &self.normalised {
            let (head, rows) = n.table(num);
            let csv = std::iter::once(head)
                .chain(rows)
                .map(|r| r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))
                .collect::<Vec<_>>()
                .join("\n");
            files.push(("normalised.csv", csv + "\n"));
        }
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| io(&p, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let fam = Family::Diagonal { steps: 2, base: Default::default(), size: None, background: Default::default(), resample: Default::default() };
        let items: Vec<ImageRef> = (0..30).map(|i| ImageRef { name: format!("{i}.png"), key: String::new(), label: None, frames: vec![] }).collect();
        let mut whole = RowFold::new(&fam);
        whole.add_part(&part(0..30), &items);
        let mut a = RowFold::new(&fam);
        a.add_part(&part(0..11), &items);
        let mut b = RowFold::new(&fam);
        b.add_part(&part(11..30), &items);
        a.merge(b);
        assert_eq!(a.summary, whole.summary);
        assert_eq!(a.images, whole.images);
        assert_eq!((&a.figure.sum, &a.figure.count, a.figure.traces.len()), (&whole.figure.sum, &whole.figure.count, whole.figure.traces.len()));
        assert_eq!(a.finish(), whole.finish());
        // By hand: 20 labelled images; top-1 right at the reference for even ones.
        let (row, _) = whole.finish();
        assert_eq!((row.images, row.inferences), (30, 90));
        assert_eq!(row.acc1, Some(10.0 / 20.0));
        assert_eq!(row.p_top1_change, Some(1.0));
        assert_eq!(row.mac, Some(0.5));
        // Traces: the first labelled images by name, p(true class) per point.
        assert_eq!(whole.figure.traces[0], ("1.png".to_string(), vec![Some(0.0), Some(0.25), Some(0.5)]));
        assert_eq!(whole.figure.count, vec![20, 20, 20]);
    }
}
