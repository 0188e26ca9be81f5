//! The report as tables, and those tables as CSV, Markdown and HTML.
//!
//! Every table is first a [`Table`] of cells (the summary's columns come from
//! the metric table); the writers only lay cells out. CSV goes through the
//! `csv` crate and HTML through a compiled `maud` template, so quoting and
//! escaping are the libraries' job.

use crate::{figures, Report, TableRow, BOOTSTRAP_RESAMPLES};
use jagged_domain::metrics::{table::metric, Format, METRICS};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::fmt::Write as _;
use std::path::Path;

/// A table of text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub head: Vec<String>,
    /// Rows of cells, as many as `head`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: impl IntoIterator<Item = impl Into<String>>) -> Table {
        Table { head: head.into_iter().map(Into::into).collect(), rows: vec![] }
    }

    /// The table as CSV (a header line, then a line per row).
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let rows = std::iter::once(&self.head).chain(&self.rows);
        for r in rows {
            w.write_record(r).expect("writing CSV to memory");
        }
        String::from_utf8(w.into_inner().expect("writing CSV to memory")).expect("cells are UTF-8")
    }

    /// The table in Markdown; `|` and line breaks in cells are escaped.
    pub fn markdown(&self) -> String {
        let cell = |c: &String| c.replace('|', "\\|").replace(['\r', '\n'], " ");
        let line = |r: &[String]| format!("| {} |\n", r.iter().map(cell).collect::<Vec<_>>().join(" | "));
        let mut out = line(&self.head);
        out += &format!("|{}|\n", self.head.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        self.rows.iter().for_each(|r| out += &line(r));
        out
    }

    /// The table as an HTML `<table>`.
    pub fn html(&self) -> Markup {
        html! {
            table {
                tr { @for h in &self.head { th { (h) } } }
                @for r in &self.rows { tr { @for c in r { td { (c) } } } }
            }
        }
    }
}

/// One column of the glossary.
struct Gloss {
    term: &'static str,
    /// What it averages over, for metrics.
    unit: Option<&'static str>,
    meaning: &'static str,
}

/// What the radius table holds.
const RADIUS_INTRO: &str = "\n## Robust radius\n\n\
    Per image, the smallest L-infinity shift of the crop window (ring r: the 8r offsets of norm r) at which the top-1 \
    differs from the reference's, searched ring by ring; each ring ran only for the images unchanged so far. \
    `robust to r px`: the fraction of images unchanged at every shift up to r; censored: unchanged up to the largest \
    ring. Inferences: what the search ran (each later ring reruns the reference), against the full grid's.\n\n";

/// What the per-layer tables hold.
const LAYERS_INTRO: &str = "\n## Per-layer equivariance\n\n\
    Each probed node (the input and output of every subsampling op, and the global pooling) in graph order, \
    with its cumulative subsampling factor k. A cell is the mean over images and both axes of \
    ||F(x_s) - S F(x_0)|| / ||S F(x_0)|| on the map's interior, where x_s is the window moved by s pixels and S \
    moves the map by floor(s / k) cells: near zero where s is a multiple of k and the node is equivariant, the change \
    a sub-cell shift makes otherwise. Pooled rows hold the invariance error ||g(x_s) - g(x_0)|| / ||g(x_0)||.\n";

/// A value of the bootstrap and normalised tables.
fn num(v: Option<f64>) -> String {
    Format::Fixed(4).show(v)
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x)).unwrap_or_else(|| "n/a".into())
}

/// Columns before the metrics.
const LEAD: [&str; 5] = ["model", "family", "images", "inferences", "failed_items"];
/// Columns after the metrics: the model's structure.
const TRAIL: [&str; 2] = ["subsampling", "blurred"];

fn summary_cells(r: &TableRow) -> Vec<String> {
    let t = &r.totals;
    let mut cells = vec![
        if r.untrained { format!("{} (untrained)", r.model) } else { r.model.clone() },
        r.family_label.clone(),
        t.images.to_string(),
        t.inferences.to_string(),
        t.failed_items.to_string(),
    ];
    cells.extend(METRICS.iter().map(|m| m.show(m.of(&r.family, t))));
    match r.structure {
        Some(s) => cells.extend([s.factor.to_string(), format!("{}/{}", s.blurred_ops, s.subsampling_ops)]),
        None => cells.extend(["n/a".to_string(), "n/a".to_string()]),
    }
    cells
}

/// The bounds of each metric's bootstrap interval, in table order.
fn interval_bounds(r: &TableRow) -> Vec<(Option<f64>, Option<f64>)> {
    r.intervals.0.iter().map(|(_, i)| (i.map(|x| x.lo), i.map(|x| x.hi))).collect()
}

impl Report {
    /// The jaggedness table: identity columns, one column per metric of the
    /// metric table, then the model's structure.
    pub fn summary_table(&self) -> Table {
        let mut t = Table::new(LEAD.into_iter().chain(METRICS.iter().map(|m| m.name)).chain(TRAIL));
        t.rows = self.rows.iter().map(summary_cells).collect();
        t
    }

    /// The bootstrap intervals as `[lo, hi]` cells.
    pub fn interval_table(&self) -> Table {
        let names = self.rows.first().map(|r| r.intervals.0.iter().map(|(n, _)| *n).collect::<Vec<_>>()).unwrap_or_default();
        let mut t = Table::new(["model", "family"].into_iter().chain(names));
        t.rows = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = vec![r.model.clone(), r.family_label.clone()];
                cells.extend(interval_bounds(r).into_iter().map(|(lo, hi)| format!("[{}, {}]", num(lo), num(hi))));
                cells
            })
            .collect();
        t
    }

    /// mFR / mT5D and the per-family ratios, each value written by `fmt`.
    fn normalised_table(&self, fmt: fn(Option<f64>) -> String) -> Option<Table> {
        let n = self.normalised.as_ref()?;
        let mut t = Table::new(["model".to_string(), "mFR".into(), "mT5D".into()]);
        t.head.extend(n.families.iter().map(|f| format!("FR {f}")));
        t.head.extend(n.families.iter().map(|f| format!("T5D {f}")));
        t.rows = n
            .models
            .iter()
            .map(|m| {
                let mut r = vec![m.model.clone(), fmt(m.ratios.mfr), fmt(m.ratios.mt5d)];
                r.extend(m.ratios.fr.iter().map(|v| fmt(*v)));
                r.extend(m.ratios.t5d.iter().map(|v| fmt(*v)));
                r
            })
            .collect();
        Some(t)
    }

    /// The spec's published values beside ours for the same family and metric.
    pub fn published_table(&self) -> Table {
        let mut t = Table::new(["family", "metric", "published model", "published", "source", "ours"]);
        for p in &self.published {
            let ours: Vec<String> = self
                .rows
                .iter()
                .filter(|r| match p.family.strip_prefix("families[").and_then(|s| s.strip_suffix(']')) {
                    Some(i) => i.parse() == Ok(r.family_index),
                    None => r.family == p.family || r.family_label == p.family,
                })
                .filter_map(|r| metric(&p.metric).and_then(|m| m.of(&r.family, &r.totals)).map(|v| format!("{}: {v:.3}", r.model)))
                .collect();
            t.rows.push(vec![
                p.family.clone(),
                p.metric.clone(),
                p.model.clone(),
                format!("{:.3}", p.value),
                p.source.clone(),
                if ours.is_empty() { "n/a".to_string() } else { ours.join("; ") },
            ]);
        }
        t
    }

    /// Failed items: model, family, image, reason.
    pub fn failures_table(&self) -> Table {
        let mut t = Table::new(["model", "family", "image", "reason"]);
        t.rows = self.failures.iter().map(|f| vec![f.model.clone(), f.family.clone(), f.image.clone(), f.reason.clone()]).collect();
        t
    }

    /// The table as CSV, with each metric's bootstrap interval bounds as extra
    /// columns (`<metric>_lo`, `<metric>_hi`).
    pub fn csv(&self) -> String {
        let mut t = self.summary_table();
        t.head.extend(METRICS.iter().filter(|m| m.interval).flat_map(|m| [format!("{}_lo", m.name), format!("{}_hi", m.name)]));
        for (cells, r) in t.rows.iter_mut().zip(&self.rows) {
            cells.extend(interval_bounds(r).into_iter().flat_map(|(lo, hi)| [num(lo), num(hi)]));
        }
        t.csv()
    }

    /// The table as Markdown.
    pub fn markdown_table(&self) -> String {
        self.summary_table().markdown()
    }

    /// The tables a terminal shows after a sweep: the summary, then the robust
    /// radii and the per-layer equivariance tables when the sweep has them.
    pub fn terminal(&self) -> String {
        let mut out = self.markdown_table();
        if let Some(t) = self.radius_table() {
            out += "\nRobust radius (adaptive search):\n\n";
            out += &t.markdown();
        }
        for (title, t, finding) in self.layer_tables() {
            let _ = write!(out, "\nPer-layer equivariance, {title}: {finding}\n\n{}", t.markdown());
        }
        out
    }

    /// What each column means, from the metric table.
    fn glossary(&self) -> Vec<Gloss> {
        let mut g = vec![
            Gloss { term: "images / inferences", unit: None, meaning: "images (sequences) with results, and the inferences they took" },
            Gloss { term: "failed_items", unit: None, meaning: "items that could not be processed (listed below)" },
        ];
        g.extend(METRICS.iter().map(|m| Gloss { term: m.name, unit: Some(m.per.describe()), meaning: m.definition }));
        g.push(Gloss {
            term: "subsampling / blurred",
            unit: None,
            meaning: "the model's cumulative subsampling factor, and its subsampling ops preceded by a low-pass filter, of all (`jagged inspect`)",
        });
        g
    }

    fn state_line(&self) -> String {
        let s = &self.sweep;
        format!(
            "State `{}`; shards {} done, {} failed, {} cancelled of {}; {} inferences.",
            s.state, s.done, s.failed, s.cancelled, s.total, s.inferences_done
        )
    }

    /// The full Markdown report.
    pub fn markdown(&self) -> String {
        let s = &self.sweep;
        let mut out = format!("# Sweep {}: {}\n\n{}\n\n", s.id, s.name, self.state_line());
        out += &crate::protocol::markdown(&self.protocol);
        out += &self.markdown_table();
        out += "\n";
        for g in self.glossary() {
            let unit = g.unit.map(|u| format!(" ({u})")).unwrap_or_default();
            let _ = writeln!(out, "- `{}`{unit}: {}.", g.term, g.meaning);
        }
        out += "\nModels marked untrained have random weights: their numbers measure the architecture only. n/a: no labelled images or no pairs, or a metric that does not apply to the family.\n";
        let _ = write!(
            out,
            "\n## 95% bootstrap intervals\n\n{BOOTSTRAP_RESAMPLES} resamples of the images (seed 0).\n\n{}",
            self.interval_table().markdown()
        );
        if let (Some(n), Some(t)) = (&self.normalised, self.normalised_table(pct)) {
            let _ = write!(
                out,
                "\n## Flip rate and top-5 distance relative to {}\n\n\
                 FR = flip_prob / the baseline's on the same family, T5D likewise with top5_dist; \
                 mFR and mT5D are their means over the families (ImageNet-P's mFR / mT5D, with this \
                 sweep's baseline in place of AlexNet).\n\n{}",
                n.baseline,
                t.markdown()
            );
        }
        if let Some(t) = self.radius_table() {
            out += RADIUS_INTRO;
            out += &t.markdown();
        }
        if !self.layers.is_empty() {
            out += LAYERS_INTRO;
            for (title, t, finding) in self.layer_tables() {
                let _ = write!(out, "\n### {title}\n\n{finding}\n\n{}", t.markdown());
            }
        }
        if !self.published.is_empty() {
            out +=
                "\n## Published values beside ours\n\nOther models and data: a comparison of magnitude, not a reproduction of the same numbers.\n\n";
            out += &self.published_table().markdown();
        }
        if !self.failures.is_empty() {
            out += "\n## Failed items\n\n";
            out += &self.failures_table().markdown();
        }
        out
    }

    /// Per-layer equivariance: one table per (model, `layers` family), a row per
    /// probed node in graph order, a column per shift; each with its finding.
    pub fn layer_tables(&self) -> Vec<(String, Table, String)> {
        self.layers
            .iter()
            .map(|t| {
                let mut table =
                    Table::new(["#", "node", "op", "k", "blurred"].into_iter().map(String::from).chain(t.shifts.iter().map(|s| format!("{s} px"))));
                for (j, n) in t.nodes.iter().enumerate() {
                    let mut cells = vec![
                        (j + 1).to_string(),
                        n.node.clone(),
                        n.op.clone(),
                        if n.factor == 0 { "pooled".into() } else { n.factor.to_string() },
                        if n.factor == 0 {
                            String::new()
                        } else if n.blurred {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                    ];
                    cells.extend(n.errors.iter().map(|&e| num(e)));
                    if t.jump == Some(j) {
                        cells[1] += " (largest 1-px jump)";
                    }
                    table.rows.push(cells);
                }
                (format!("{}, {}", t.model, t.family_label), table, t.finding())
            })
            .collect()
    }

    /// Robust radii: one row per (model, `radius` family): the median, the
    /// fraction of images robust up to each radius, and the inferences saved.
    pub fn radius_table(&self) -> Option<Table> {
        let max = self.radius.iter().map(|t| t.max_radius).max()?;
        let mut table = Table::new(
            ["model", "family", "images", "median radius", "censored"]
                .into_iter()
                .map(String::from)
                .chain((1..=max).map(|r| format!("robust to {r} px")))
                .chain(["inferences", "full grid", "saved"].into_iter().map(String::from)),
        );
        for t in &self.radius {
            let mut cells = vec![t.model.clone(), t.family_label.clone(), t.images.to_string(), t.median_label(), t.censored.to_string()];
            cells.extend((1..=max as usize).map(|r| t.survival.get(r).copied().flatten().map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))));
            cells.extend([t.inferences.to_string(), t.full_grid.to_string(), pct(t.saved())]);
            table.rows.push(cells);
        }
        Some(table)
    }

    /// The radius distributions in long form: one line per (model, family, radius).
    pub fn radius_csv(&self) -> String {
        let mut table = Table::new(["model", "family", "radius", "images", "robust_fraction"]);
        for t in &self.radius {
            for r in 1..=t.max_radius as usize {
                let robust = t.survival.get(r).copied().flatten().map(|v| format!("{v:.6}")).unwrap_or_default();
                table.rows.push(vec![t.model.clone(), t.family_label.clone(), r.to_string(), t.distribution[r].to_string(), robust]);
            }
            table.rows.push(vec![t.model.clone(), t.family_label.clone(), format!(">{}", t.max_radius), t.censored.to_string(), String::new()]);
        }
        table.csv()
    }

    /// The per-layer errors in long form: one line per (model, family, node, shift).
    pub fn layers_csv(&self) -> String {
        let mut table = Table::new(["model", "family", "depth", "node", "op", "factor", "blurred", "shift", "error", "samples"]);
        for t in &self.layers {
            for (j, n) in t.nodes.iter().enumerate() {
                for (i, s) in t.shifts.iter().enumerate() {
                    table.rows.push(vec![
                        t.model.clone(),
                        t.family_label.clone(),
                        (j + 1).to_string(),
                        n.node.clone(),
                        n.op.clone(),
                        n.factor.to_string(),
                        n.blurred.to_string(),
                        s.to_string(),
                        n.errors[i].map(|e| format!("{e:.6}")).unwrap_or_default(),
                        n.samples[i].to_string(),
                    ]);
                }
            }
        }
        table.csv()
    }

    /// Every figure as (file stem, SVG text).
    pub fn figures(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let slug = |s: &str| {
            s.chars().filter(|c| *c != ']').map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect::<String>()
        };
        for (r, d) in self.rows.iter().zip(&self.figures) {
            if !r.figures.any {
                continue;
            }
            let stem = format!("{}__{}", slug(&r.model), slug(&r.family_label));
            let what = format!("{}, {}", r.model, r.family_label);
            if let Some(s) = figures::heatmap(&format!("p(true class) per image: {what}"), d, r.figures) {
                out.push((format!("{stem}__heatmap"), s));
            }
            if r.figures.line.is_some() {
                if let Some(s) = figures::traces(&format!("p(true class) along the transformation: {what}"), d, r.figures) {
                    out.push((format!("{stem}__traces"), s));
                }
            }
            if r.figures.map {
                if let Some(s) = figures::grid_map(&format!("mean p(true class) over offsets: {what}"), d) {
                    out.push((format!("{stem}__map"), s));
                }
            }
        }
        let bars = |name: &str| -> Vec<(String, String, Option<f64>)> {
            self.rows.iter().map(|r| (r.model.clone(), r.family_label.clone(), r.metric(name))).collect()
        };
        let mut radius_labels: Vec<&str> = self.radius.iter().map(|t| t.family_label.as_str()).collect();
        radius_labels.dedup();
        for label in radius_labels {
            let series: Vec<(String, Vec<Option<f64>>)> =
                self.radius.iter().filter(|t| t.family_label == label).map(|t| (t.model.clone(), t.survival.clone())).collect();
            let title = format!("images whose top-1 survives every shift up to r: {label}");
            let radii: Vec<String> = (0..series.iter().map(|s| s.1.len()).max().unwrap_or(0)).map(|r| r.to_string()).collect();
            if let Some(s) = figures::lines(&title, "radius r (px, L-infinity)", "fraction robust", &radii, &series) {
                out.push((format!("{}__survival", slug(label)), s));
            }
        }
        let mut labels: Vec<&str> = self.layers.iter().map(|t| t.family_label.as_str()).collect();
        labels.dedup();
        for label in labels {
            let tables: Vec<&crate::layers::LayerTable> = self.layers.iter().filter(|t| t.family_label == label).collect();
            let factors: Vec<u32> = {
                let mut f: Vec<u32> = tables.iter().flat_map(|t| t.nodes.iter().map(|n| n.factor)).collect();
                f.sort_by_key(|&k| if k == 0 { u32::MAX } else { k });
                f.dedup();
                f
            };
            let labels: Vec<String> = factors.iter().map(|&k| if k == 0 { "pooled".to_string() } else { k.to_string() }).collect();
            let series: Vec<(String, Vec<Option<f64>>)> = tables.iter().map(|t| (t.model.clone(), t.by_factor(&factors))).collect();
            let title = format!("one-pixel error at each cumulative factor's first map: {label}");
            if let Some(s) = figures::lines(&title, "cumulative subsampling factor k", "relative error", &labels, &series) {
                out.push((format!("{}__depth", slug(label)), s));
            }
        }
        if let Some(s) = figures::bars("P(top-1 change) per model and family", "P(top-1 change)", &bars("p_top1_change")) {
            out.push(("bars_p_top1_change".into(), s));
        }
        if let Some(s) = figures::bars("Jagged images per model and family", "fraction of jagged images", &bars("jagged_fraction")) {
            out.push(("bars_jagged_fraction".into(), s));
        }
        out
    }

    /// A self-contained HTML page: the tables, the glossary and the figures inline.
    pub fn html(&self) -> String {
        const CSS: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}\
            table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}\
            th{background:#f0f0f0}td:nth-child(-n+2){text-align:left}figure{display:inline-block;margin:8px}";
        let s = &self.sweep;
        let page = html! {
            (DOCTYPE)
            html {
                head {
                    meta charset="utf-8";
                    title { "jagged report: sweep " (s.id) }
                    style { (PreEscaped(CSS)) }
                }
                body {
                    h1 { "Sweep " (s.id) ": " (s.name) }
                    p {
                        "State " b { (s.state) } "; shards " (s.done) " done, " (s.failed) " failed, " (s.cancelled)
                        " cancelled of " (s.total) "; " (s.inferences_done) " inferences."
                    }
                    section #protocol {
                        h2 { "Protocol" }
                        p { "Fingerprint " code { (crate::protocol::short(&self.protocol)) } ": reports with the same fingerprint measured the same thing; "
                            code { "protocol.json" } " has every parameter." }
                        ul {
                            @for m in self.protocol["models"].as_array().into_iter().flatten() {
                                li { "model " code { (m["name"].as_str().unwrap_or("")) } ": sha256 " (m["sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""))
                                    "…, input " (m["input_size"]) " px; " (m["runs"].to_string()) }
                            }
                            @for f in self.protocol["families"].as_array().into_iter().flatten() {
                                li { "family " code { (f["label"].as_str().unwrap_or("")) } ": " code { (f.to_string()) } }
                            }
                            li { "dataset: " (self.protocol["dataset"]["images"]) " images, " (self.protocol["dataset"]["labelled"]) " labelled, sha256 "
                                (self.protocol["dataset"]["sha256"].as_str().unwrap_or("").get(..12).unwrap_or("")) "…" }
                            @for n in self.protocol["notes"].as_array().into_iter().flatten() { li { b { "Note: " } (n.as_str().unwrap_or("")) } }
                        }
                    }
                    (self.summary_table().html())
                    dl {
                        @for g in self.glossary() {
                            dt { code { (g.term) } @if let Some(u) = g.unit { " (" (u) ")" } }
                            dd { (g.meaning) }
                        }
                    }
                    h2 { "95% bootstrap intervals" }
                    p { (BOOTSTRAP_RESAMPLES) " resamples of the images (seed 0)." }
                    (self.interval_table().html())
                    @if let (Some(n), Some(t)) = (&self.normalised, self.normalised_table(pct)) {
                        h2 { "Flip rate and top-5 distance relative to " (n.baseline) }
                        (t.html())
                    }
                    @if let Some(t) = self.radius_table() {
                        h2 { "Robust radius" }
                        p { (RADIUS_INTRO.trim_start_matches("\n## Robust radius\n\n").trim()) }
                        (t.html())
                    }
                    @if !self.layers.is_empty() {
                        h2 { "Per-layer equivariance" }
                        p { (LAYERS_INTRO.trim_start_matches("\n## Per-layer equivariance\n\n").trim()) }
                        @for (title, t, finding) in self.layer_tables() {
                            h3 { (title) }
                            p { (finding) }
                            (t.html())
                        }
                    }
                    @if !self.published.is_empty() {
                        h2 { "Published values beside ours" }
                        p { "Other models and data: a comparison of magnitude, not a reproduction of the same numbers." }
                        (self.published_table().html())
                    }
                    h2 { "Figures" }
                    @for (name, svg) in self.figures() {
                        figure { (PreEscaped(svg)) figcaption { (name) } }
                    }
                    @if !self.failures.is_empty() {
                        h2 { "Failed items" }
                        (self.failures_table().html())
                    }
                }
            }
        };
        page.into_string()
    }

    /// Writes `summary.csv`, `summary.md`, `failed_items.csv`, `cost.csv`, `protocol.json`, `report.html`,
    /// `normalised.csv` (with a baseline), `layers.csv` (with `layers` families), `radius.csv` (with `radius` families) and `figures/*.svg` and `*.png` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), crate::ReportError> {
        let io = |p: &Path, e| crate::ReportError::Io(p.display().to_string(), e);
        std::fs::create_dir_all(dir.join("figures")).map_err(|e| io(dir, e))?;
        for (name, svg) in self.figures() {
            let p = dir.join("figures").join(format!("{name}.svg"));
            std::fs::write(&p, &svg).map_err(|e| io(&p, e))?;
            let png = figures::png(&svg).map_err(|e| crate::ReportError::Io(name.clone(), std::io::Error::other(e)))?;
            let p = dir.join("figures").join(format!("{name}.png"));
            std::fs::write(&p, png).map_err(|e| io(&p, e))?;
        }
        let mut files = vec![
            ("report.html", self.html()),
            ("summary.csv", self.csv()),
            ("summary.md", self.markdown()),
            ("failed_items.csv", self.failures_table().csv()),
            ("cost.csv", jagged_domain::cost::csv(&self.cost, &self.models, &self.prices)),
            ("protocol.json", serde_json::to_string_pretty(&self.protocol).expect("a JSON value serializes") + "\n"),
        ];
        if let Some(t) = self.normalised_table(num) {
            files.push(("normalised.csv", t.csv()));
        }
        if !self.layers.is_empty() {
            files.push(("layers.csv", self.layers_csv()));
        }
        if !self.radius.is_empty() {
            files.push(("radius.csv", self.radius_csv()));
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

    #[test]
    fn cells_are_quoted_and_escaped_by_each_format() {
        let t = Table { head: vec!["a".into(), "b".into()], rows: vec![vec!["x,y\r\nz".into(), "say \"hi\" | <b>&'".into()]] };
        assert_eq!(t.csv(), "a,b\n\"x,y\r\nz\",\"say \"\"hi\"\" | <b>&'\"\n");
        assert_eq!(t.markdown(), "| a | b |\n|---|---|\n| x,y  z | say \"hi\" \\| <b>&' |\n");
        let h = t.html().into_string();
        assert!(h.contains("<td>say &quot;hi&quot; | &lt;b&gt;&amp;'</td>"), "{h}");
    }

    #[test]
    fn the_summary_has_a_column_per_metric_of_the_table() {
        let head = Table::new(LEAD.into_iter().chain(METRICS.iter().map(|m| m.name)).chain(TRAIL)).head;
        assert_eq!(head.len(), LEAD.len() + METRICS.len() + TRAIL.len());
        for m in METRICS {
            assert!(head.iter().any(|h| h == m.name), "{}", m.name);
        }
    }
}
