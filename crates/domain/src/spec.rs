//! The sweep spec (TOML) and its validation.
//!
//! A [`SweepSpec`] is what the user writes. The CLI locates its files, uploads
//! models and images to the object store and produces a [`ResolvedSweep`], which
//! the coordinator validates again and plans into shards. Every error names the
//! field it concerns, e.g. `families[1].max_shift`.

use crate::transform::{Family, Normalize};
use serde::{Deserialize, Serialize};

/// A spec error, naming the field (dotted path with indices) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The TOML did not parse into a spec (unknown fields and families land here).
    #[error("invalid spec: {0}")]
    Parse(String),
    /// A field has a value the spec does not allow.
    #[error("invalid spec: `{field}`: {message}")]
    Field {
        /// Dotted path of the field, e.g. `families[0].step`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

fn field(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Field { field: field.into(), message: message.into() }
}

/// A sweep as the user writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Human-readable name.
    pub name: String,
    /// Higher runs first when sweeps compete for workers.
    #[serde(default)]
    pub priority: i32,
    /// The images; may be left out when every family is a `sequence` (which names
    /// its own folder).
    #[serde(default)]
    pub dataset: Option<DatasetSpec>,
    /// The models to compare.
    pub models: Vec<ModelSpec>,
    /// The transform families, each with its grid.
    pub families: Vec<Family>,
    /// Sharding and retries.
    #[serde(default)]
    pub shard: ShardSpec,
    /// Inference settings.
    #[serde(default)]
    pub run: RunSpec,
    /// Metric options.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Published values to print beside this sweep's results in the report.
    #[serde(default)]
    pub published: Vec<Published>,
    /// Each family's name in tables and figures, by index: `label = "Black"` in
    /// the family's own table of the spec (none: the family's kind, see
    /// [`SweepSpec::family_label`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub family_labels: Vec<Option<String>>,
}

/// Metric options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    /// The model (by name) that flip rates and top-5 distances are normalised by
    /// (mFR, mT5D; ImageNet-P used AlexNet). Without it there is no mFR table.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Families averaged into mFR / mT5D, by name (`sequence`) or position
    /// (`families[2]`); default: every family except `random_pairs`.
    #[serde(default)]
    pub families: Option<Vec<String>>,
}

/// Whether a selector (`crop`, `families[2]`) names family `index` of `families`.
pub fn selects(selector: &str, families: &[Family], index: usize) -> bool {
    selector == format!("families[{index}]") || families.get(index).is_some_and(|f| f.name() == selector)
}

/// A family as tables show it, without a label: its kind, with its position
/// when the spec has several of that kind; sequences by their folder
/// (ImageNet-P: the perturbation).
fn default_family_label(families: &[Family], f: usize) -> String {
    let name = families[f].name();
    match families[f].as_sequence() {
        Some(s) => {
            let path = &s.path;
            let folder = |p: &str| std::path::Path::new(p).file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let same = families.iter().filter_map(Family::as_sequence).filter(|s| folder(&s.path) == folder(path)).count();
            if same > 1 || folder(path).is_empty() {
                format!("sequence[{f}]")
            } else {
                format!("sequence:{}", folder(path))
            }
        }
        _ if families.iter().filter(|x| x.name() == name).count() > 1 => format!("{name}[{f}]"),
        _ => name.to_string(),
    }
}

/// A published number, shown beside the sweep's own for the same family and metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// The model it was measured on (need not be in the sweep).
    pub model: String,
    /// The family it corresponds to: a name (e.g. `crop`) or a position
    /// (`families[2]`) when the spec has several of one kind.
    pub family: String,
    /// The metric: a name of the metric table ([`crate::metrics::METRICS`]).
    pub metric: String,
    /// The value, as a fraction.
    pub value: f64,
    /// Where it comes from.
    pub source: String,
}

/// Where the images are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A folder: images with a labels CSV, loose images, or one folder per class
    /// ([`Layout`]).
    /// Relative paths are relative to the spec file.
    pub path: String,
    /// CSV of `file,label` (label: class index or class name of the first model's
    /// card); default `labels.csv` in the folder when present.
    #[serde(default)]
    pub labels: Option<String>,
    /// Use only the first N images (in sorted order).
    #[serde(default)]
    pub limit: Option<u32>,
    /// How a folder without a labels file is read.
    #[serde(default, skip_serializing_if = "is_default")]
    pub layout: Layout,
    /// What happens to images in the folder that the labels file does not list.
    #[serde(default, skip_serializing_if = "is_default")]
    pub unlisted: Unlisted,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// How a dataset folder without a labels file is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Loose images (unlabelled), or one folder per class named by a class
    /// name or id of the model; anything else is refused as ambiguous.
    #[default]
    Auto,
    /// Loose images only, unlabelled; subfolders are ignored.
    Images,
    /// One folder per class (torchvision's ImageFolder): a folder named by a
    /// class name or id of the model gets that class, others are classes in
    /// sorted order; loose images are refused.
    Classes,
}

/// What happens to images a labels file does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlisted {
    /// Refuse the spec, naming them.
    #[default]
    Refuse,
    /// Leave them out of the sweep.
    Skip,
    /// Include them, unlabelled.
    Unlabelled,
}

/// One model: an ONNX file and its card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name in tables; default: the card's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Local path of the `.onnx` file (uploaded at submit), relative to the spec file.
    #[serde(default)]
    pub path: Option<String>,
    /// Key of the `.onnx` file already in the object store.
    #[serde(default)]
    pub uri: Option<String>,
    /// The model card (JSON); default: the model path with `.card.json` for `.onnx`.
    #[serde(default)]
    pub card: Option<String>,
}

/// Sharding and retry settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// Images per shard; default: enough for about `target_seconds` of work at
    /// the model's measured throughput, or `target_inferences` before any.
    #[serde(default)]
    pub images: Option<u32>,
    /// Seconds a shard should last when `images` is not given and the model's
    /// throughput has been measured (by earlier sweeps' commits).
    #[serde(default = "default_target_seconds")]
    pub target_seconds: f64,
    /// Inferences a shard should hold when `images` is not given and no
    /// throughput is known.
    #[serde(default = "default_target")]
    pub target_inferences: u32,
    /// Attempts before a shard is marked failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_target() -> u32 {
    1024
}
fn default_target_seconds() -> f64 {
    30.0
}
fn default_attempts() -> u32 {
    3
}

impl Default for ShardSpec {
    fn default() -> Self {
        ShardSpec { images: None, target_seconds: default_target_seconds(), target_inferences: default_target(), max_attempts: default_attempts() }
    }
}

/// Inference settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Inputs per `session.run`.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// Also store each point's full probability vector in the result files.
    #[serde(default)]
    pub keep_probs: bool,
    /// How JPEG files are decoded: `builtin` or `libjpeg-turbo` (Pillow's).
    #[serde(default, skip_serializing_if = "is_default")]
    pub jpeg_decoder: crate::image::JpegDecoder,
}

fn default_batch() -> u32 {
    32
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec { batch_size: default_batch(), keep_probs: false, jpeg_decoder: Default::default() }
    }
}

/// Largest batch a spec may ask for.
pub const MAX_BATCH: u32 = 4096;

impl SweepSpec {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<SweepSpec, SpecError> {
        let parse = |e: &dyn std::fmt::Display| SpecError::Parse(e.to_string().trim().to_string());
        let mut table: toml::Table = text.parse().map_err(|e| parse(&e))?;
        if table.contains_key("family_labels") {
            return Err(field("family_labels", "is not a spec field: name a family with `label = \"...\"` in its own table"));
        }
        // Labels sit in each family's table, beside its kind's own fields.
        let mut labels = Vec::new();
        if let Some(toml::Value::Array(families)) = table.get_mut("families") {
            for (i, f) in families.iter_mut().enumerate() {
                match f.as_table_mut().and_then(|t| t.remove("label")) {
                    None => labels.push(None),
                    Some(toml::Value::String(s)) => labels.push(Some(s)),
                    Some(_) => return Err(field(format!("families[{i}].label"), "must be a string")),
                }
            }
        }
        let mut spec: SweepSpec =
            toml::Value::Table(table.clone()).try_into().map_err(|e| locate_parse_error(&table).unwrap_or_else(|| parse(&e)))?;
        if labels.iter().any(Option::is_some) {
            spec.family_labels = labels;
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Family `f` as tables, figures and the published-values table name it: its
    /// `label`, else its kind (with its position when the spec has several of
    /// that kind; sequences by their folder).
    pub fn family_label(&self, f: usize) -> String {
        match self.family_labels.get(f) {
            Some(Some(l)) => l.clone(),
            _ => default_family_label(&self.families, f),
        }
    }

    /// Whether a selector (a label, `crop`, `families[2]`) names family `f`.
    pub fn selects(&self, selector: &str, f: usize) -> bool {
        self.family_labels.get(f).is_some_and(|l| l.as_deref() == Some(selector)) || selects(selector, &self.families, f)
    }

    /// Checks everything that needs no files or model cards.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name("name", &self.name)?;
        if !crate::share::PRIORITIES.contains(&self.priority) {
            return Err(field(
                "priority",
                format!(
                    "{} is outside {}..={} (each step doubles a sweep's share of the workers)",
                    self.priority,
                    crate::share::PRIORITIES.start(),
                    crate::share::PRIORITIES.end()
                ),
            ));
        }
        match &self.dataset {
            Some(d) if d.path.trim().is_empty() => return Err(field("dataset.path", "must not be empty")),
            Some(d) if d.limit == Some(0) => return Err(field("dataset.limit", "must be at least 1")),
            Some(_) => {}
            None => {
                if let Some(i) = self.families.iter().position(|f| f.as_sequence().is_none()) {
                    return Err(field("dataset", format!("is needed by `families[{i}]` ({})", self.families[i].name())));
                }
            }
        }
        if self.models.is_empty() {
            return Err(field("models", "at least one model is needed"));
        }
        for (i, m) in self.models.iter().enumerate() {
            if let Some(name) = &m.name {
                check_name(&format!("models[{i}].name"), name)?;
            }
            match (&m.path, &m.uri) {
                (None, None) => return Err(field(format!("models[{i}]"), "needs `path` or `uri`")),
                (Some(_), Some(_)) => return Err(field(format!("models[{i}]"), "give `path` or `uri`, not both")),
                _ => {}
            }
        }
        if self.families.is_empty() {
            return Err(field("families", "at least one transform family is needed"));
        }
        for (i, f) in self.families.iter().enumerate() {
            f.validate(None).map_err(|(f, m)| field(format!("families[{i}].{f}"), m))?;
            // (A sequence's length is known once its folders are read; it needs two frames.)
            if f.as_sequence().is_none() && f.pairs().is_empty() {
                return Err(field(
                    format!("families[{i}]"),
                    format!(
                        "`{}` has {} grid point(s) and no neighbouring pairs to compare: widen it (`max_shift` >= 1, `from` < `to`)",
                        f.name(),
                        f.points().len()
                    ),
                ));
            }
        }
        if self.shard.images == Some(0) {
            return Err(field("shard.images", "must be at least 1"));
        }
        if !(self.shard.target_seconds >= 1.0 && self.shard.target_seconds <= 86_400.0) {
            return Err(field("shard.target_seconds", "must be between 1 and 86400"));
        }
        if self.shard.target_inferences == 0 {
            return Err(field("shard.target_inferences", "must be at least 1"));
        }
        if !(1..=100).contains(&self.shard.max_attempts) {
            return Err(field("shard.max_attempts", "must be between 1 and 100"));
        }
        if !(1..=MAX_BATCH).contains(&self.run.batch_size) {
            return Err(field("run.batch_size", format!("must be between 1 and {MAX_BATCH}")));
        }
        if let Some(sel) = &self.metrics.families {
            for (i, x) in sel.iter().enumerate() {
                if !(0..self.families.len()).any(|f| self.selects(x, f)) {
                    return Err(field(format!("metrics.families[{i}]"), format!("`{x}` names no family of this spec")));
                }
            }
        }
        if !self.family_labels.is_empty() && self.family_labels.len() != self.families.len() {
            return Err(field("families", "every family needs its entry in the labels (none for a family without a label)"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, l) in self.family_labels.iter().enumerate() {
            if let Some(l) = l {
                check_name(&format!("families[{i}].label"), l)?;
                if !seen.insert(l.as_str()) {
                    return Err(field(format!("families[{i}].label"), format!("`{l}` labels two families; each needs its own")));
                }
            }
        }
        for (i, p) in self.published.iter().enumerate() {
            if crate::metrics::table::metric(&p.metric).is_none() {
                return Err(field(format!("published[{i}].metric"), format!("`{}` is not one of {}", p.metric, crate::metrics::table::names())));
            }
            if !p.value.is_finite() {
                return Err(field(format!("published[{i}].value"), "must be a number"));
            }
        }
        Ok(())
    }
}

/// A card for tests: model `m`, input `x` of 32 x 32, output `y` of 10 classes.
#[cfg(test)]
pub(crate) fn test_card() -> ModelCard {
    ModelCard {
        name: "m".into(),
        input_name: "x".into(),
        output_name: "y".into(),
        input_size: 32,
        normalize: crate::transform::Normalize { mean: [0.0; 3], std: [1.0; 3] },
        num_classes: 10,
        output: Default::default(),
        classes: vec![],
        wnids: vec![],
        untrained: true,
        source: String::new(),
        license: String::new(),
        antialiased: None,
    }
}

/// Longest name of a sweep or model, in characters.
pub const MAX_NAME: usize = 200;

/// A name shown in tables and status lines: not empty, at most [`MAX_NAME`]
/// characters, no control characters.
fn check_name(at: &str, name: &str) -> Result<(), SpecError> {
    if name.trim().is_empty() {
        return Err(field(at, "must not be empty"));
    }
    let n = name.chars().count();
    if n > MAX_NAME {
        return Err(field(at, format!("is {n} characters long; at most {MAX_NAME} are allowed")));
    }
    if name.chars().any(char::is_control) {
        return Err(field(at, "must not contain control characters (line breaks, tabs)"));
    }
    Ok(())
}

/// Re-reads a spec that failed to parse section by section, to name the field
/// (e.g. `families[1]`) that breaks it.
fn locate_parse_error(table: &toml::Table) -> Option<SpecError> {
    fn check<T: serde::de::DeserializeOwned>(v: &toml::Value, name: String) -> Option<SpecError> {
        v.clone().try_into::<T>().err().map(|e| field(name, e.message().trim().to_string()))
    }
    let list = |key: &str| table.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    list("families")
        .iter()
        .enumerate()
        .find_map(|(i, f)| check::<Family>(f, format!("families[{i}]")))
        .or_else(|| list("models").iter().enumerate().find_map(|(i, m)| check::<ModelSpec>(m, format!("models[{i}]"))))
        .or_else(|| table.get("dataset").and_then(|d| check::<DatasetSpec>(d, "dataset".into())))
        .or_else(|| table.get("shard").and_then(|d| check::<ShardSpec>(d, "shard".into())))
        .or_else(|| table.get("run").and_then(|d| check::<RunSpec>(d, "run".into())))
        .or_else(|| table.get("metrics").and_then(|d| check::<MetricsSpec>(d, "metrics".into())))
        .or_else(|| list("published").iter().enumerate().find_map(|(i, p)| check::<Published>(p, format!("published[{i}]"))))
}

/// What a model's output means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised scores; softmax is applied.
    #[default]
    Logits,
    /// Already probabilities.
    Probabilities,
}

/// The facts about a model that jagged needs to feed and read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Name of the model.
    pub name: String,
    /// Name of the graph input.
    pub input_name: String,
    /// Name of the graph output.
    pub output_name: String,
    /// Side of the square input (NCHW, 3 channels).
    pub input_size: u32,
    /// Normalisation in pixel units, RGB.
    pub normalize: Normalize,
    /// Number of output classes.
    pub num_classes: u32,
    /// Logits or probabilities.
    #[serde(default)]
    pub output: OutputKind,
    /// Class names, index order (may be empty).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Class identifiers, index order (ImageNet WordNet ids such as `n01440764`),
    /// so ImageFolder datasets named by id are labelled correctly (may be empty).
    #[serde(default)]
    pub wnids: Vec<String>,
    /// Weights are random, not trained: numbers measure the architecture only.
    #[serde(default)]
    pub untrained: bool,
    /// Where the weights come from.
    #[serde(default)]
    pub source: String,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
    /// Set on a model rewritten with BlurPool (`jagged models antialias`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub antialiased: Option<Antialiased>,
}

/// How a model was anti-aliased: Zhang's BlurPool written into its parent's graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Antialiased {
    /// Side of the binomial blur filter (3, 5 or 7).
    pub filter: u32,
    /// SHA-256 of the parent model's ONNX file.
    pub parent_sha256: String,
    /// The parent's name.
    pub parent: String,
}

impl ModelCard {
    /// Checks the card's own consistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.input_size == 0 || self.input_size > 4096 {
            return Err(format!("input_size {} is outside 1..=4096", self.input_size));
        }
        if self.num_classes == 0 {
            return Err("num_classes must be at least 1".into());
        }
        if !self.classes.is_empty() && self.classes.len() != self.num_classes as usize {
            return Err(format!("{} class names for {} classes", self.classes.len(), self.num_classes));
        }
        if !self.wnids.is_empty() && self.wnids.len() != self.num_classes as usize {
            return Err(format!("{} class ids for {} classes", self.wnids.len(), self.num_classes));
        }
        if self.normalize.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err("normalize.std must be finite and non-zero".into());
        }
        Ok(())
    }

    /// Checks a graph's declared input and output (by the card's names; `None`:
    /// the graph has no such tensor; negative dimensions are symbolic) against
    /// the card: the input must take `[N, 3, size, size]` and the output's last
    /// dimension must be the card's class count. Submit checks the graph file;
    /// workers check the loaded session.
    pub fn check_ports(&self, input: Option<&[i64]>, output: Option<&[i64]>) -> Result<(), String> {
        let input = input.ok_or_else(|| format!("has no input named `{}` (its card says so)", self.input_name))?;
        let s = self.input_size as i64;
        let fits = |d: i64| d == s || d < 0;
        if !(input.len() == 4 && (input[1] == 3 || input[1] < 0) && fits(input[2]) && fits(input[3])) {
            return Err(format!("input `{}` has shape {input:?}; the card expects [N, 3, {s}, {s}]", self.input_name));
        }
        let output = output.ok_or_else(|| format!("has no output named `{}` (its card says so)", self.output_name))?;
        match output.last() {
            Some(&last) if last >= 0 && last != self.num_classes as i64 => {
                Err(format!("output `{}` has {last} classes; the card says {}", self.output_name, self.num_classes))
            }
            _ => Ok(()),
        }
    }
}

/// Where a model subsamples, read from its graph once when it is submitted
/// (`jagged inspect` shows the details), so reports never parse graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Structure {
    /// Cumulative subsampling factor: the product of strides along the path.
    pub factor: i64,
    /// Subsampling ops (strided convolutions and pools).
    pub subsampling_ops: u32,
    /// Of those, the ops a low-pass filter precedes.
    pub blurred_ops: u32,
}

/// A model with its file in the object store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedModel {
    /// Name in tables.
    pub name: String,
    /// Object-store key of the `.onnx` file.
    pub key: String,
    /// Its card.
    pub card: ModelCard,
    /// Its subsampling structure; `None` when the graph could not be read or the
    /// sweep was stored before structures were recorded.
    #[serde(default)]
    pub structure: Option<Structure>,
}

/// An image with its file in the object store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Name (path relative to the dataset root).
    pub name: String,
    /// Object-store key of the file.
    pub key: String,
    /// True class index, if labelled.
    pub label: Option<i32>,
    /// For a sequence: the object-store keys of its frames, in order (`key` is the
    /// first); empty for an image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
}

/// The layout version of a [`ResolvedSweep`] as stored (JSON in PostgreSQL).
/// Format 1 had no model [`Structure`]; format 2 adds it. Readers accept every
/// format up to this one and refuse newer ones by name.
pub const RESOLVED_FORMAT: u32 = 2;

/// A spec whose files have been located and stored: all the coordinator needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedSweep {
    /// The spec as written.
    pub spec: SweepSpec,
    /// Models, in spec order.
    pub models: Vec<ResolvedModel>,
    /// Images, in dataset order.
    pub images: Vec<ImageRef>,
    /// The items of families that bring their own (`sequence`), by family index.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub family_items: std::collections::BTreeMap<u32, Vec<ImageRef>>,
}

impl ResolvedSweep {
    /// The items family `family` runs over: its own (sequences) or the dataset's images.
    pub fn items(&self, family: usize) -> &[ImageRef] {
        self.family_items.get(&(family as u32)).map(Vec::as_slice).unwrap_or(&self.images)
    }

    /// Validates the spec against the models' cards and the dataset.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.spec.validate()?;
        if self.models.len() != self.spec.models.len() {
            return Err(field("models", "resolved model count differs from the spec"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in self.models.iter().enumerate() {
            m.card.validate().map_err(|e| field(format!("models[{i}].card"), e))?;
            if !names.insert(m.name.as_str()) {
                return Err(field(format!("models[{i}].name"), format!("`{}` is used twice", m.name)));
            }
            for (j, f) in self.spec.families.iter().enumerate() {
                f.validate(Some(m.card.input_size)).map_err(|(f, msg)| field(format!("families[{j}].{f}"), format!("{msg} (model `{}`)", m.name)))?;
            }
        }
        if let Some(b) = &self.spec.metrics.baseline {
            if !self.models.iter().any(|m| &m.name == b) {
                let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                return Err(field("metrics.baseline", format!("`{b}` is not a model of this sweep ({})", names.join(", "))));
            }
        }
        let n = self.models.iter().map(|m| m.card.num_classes).min().unwrap_or(0);
        for (f, fam) in self.spec.families.iter().enumerate() {
            let own = fam.as_sequence().is_some();
            if own && !self.family_items.contains_key(&(f as u32)) {
                return Err(field(format!("families[{f}].path"), "sequences were not resolved"));
            }
            if fam.as_sequence().is_some_and(|s| s.frames.is_none()) {
                return Err(field(format!("families[{f}].frames"), "was not resolved"));
            }
            let (items, what) = if own { (self.items(f), format!("families[{f}]")) } else { (&self.images[..], "dataset".to_string()) };
            if items.is_empty() {
                return Err(field(format!("{what}.path"), if own { "holds no sequences" } else { "holds no images" }));
            }
            for (i, img) in items.iter().enumerate() {
                if let Some(l) = img.label {
                    if l < 0 || l as u32 >= n {
                        return Err(field(format!("{what}.labels"), format!("label {l} of item {i} `{}` is outside 0..{n}", img.name)));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_ports_are_checked_against_the_card() {
        let card = ModelCard { num_classes: 1000, ..test_card() };
        assert_eq!(card.check_ports(Some(&[-1, 3, 32, 32]), Some(&[-1, 1000])), Ok(()));
        assert_eq!(card.check_ports(Some(&[1, 3, -1, -1]), Some(&[1, -1])), Ok(()), "symbolic dimensions fit");
        assert_eq!(card.check_ports(Some(&[-1, 3, 32, 32]), Some(&[-1, 10])), Err("output `y` has 10 classes; the card says 1000".into()));
        assert_eq!(
            card.check_ports(Some(&[-1, 3, 64, 64]), Some(&[-1, 1000])),
            Err("input `x` has shape [-1, 3, 64, 64]; the card expects [N, 3, 32, 32]".into())
        );
        assert_eq!(
            card.check_ports(Some(&[3, 32, 32]), Some(&[1000])),
            Err("input `x` has shape [3, 32, 32]; the card expects [N, 3, 32, 32]".into())
        );
        assert_eq!(card.check_ports(None, Some(&[1000])), Err("has no input named `x` (its card says so)".into()));
        assert_eq!(card.check_ports(Some(&[1, 3, 32, 32]), None), Err("has no output named `y` (its card says so)".into()));
    }

    const GOOD: &str = r#"
name = "t"
[dataset]
path = "imgs"
[[models]]
path = "m.onnx"
[[families]]
kind = "crop"
max_shift = 2
[[families]]
kind = "diagonal"
"#;

    #[test]
    fn a_good_spec_parses_with_defaults() {
        let s = SweepSpec::from_toml(GOOD).unwrap();
        assert_eq!(s.run.batch_size, 32);
        assert_eq!(s.shard.max_attempts, 3);
        assert_eq!(s.families[1].points().len(), 9);
    }

    #[test]
    fn unknown_family_is_refused_by_name() {
        let bad = GOOD.replace("kind = \"diagonal\"", "kind = \"wobble\"");
        let e = SweepSpec::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("`families[1]`") && e.contains("wobble") && e.contains("crop"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = GOOD.replace("max_shift = 2", "max_shift = 2\nmax_shfit = 3");
        let e = SweepSpec::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("`families[0]`") && e.contains("max_shfit"), "{e}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let bad = GOOD.replace("max_shift = 2", "max_shift = 2\nstep = 0");
        assert_eq!(
            SweepSpec::from_toml(&bad).unwrap_err(),
            SpecError::Field { field: "families[0].step".into(), message: "must be a positive number of pixels".into() }
        );
        let bad = format!("{GOOD}\n[run]\nbatch_size = 0\n");
        assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("`run.batch_size`"));
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_allowed_range() {
        let err = |toml: &str| SweepSpec::from_toml(toml).unwrap_err().to_string();
        let e = err(&GOOD.replace("name = \"t\"", "name = \"t\"\npriority = 1000"));
        assert!(e.contains("`priority`") && e.contains("1000 is outside -10..=10"), "{e}");
        assert!(SweepSpec::from_toml(&GOOD.replace("name = \"t\"", "name = \"t\"\npriority = -10")).is_ok());
        let long = "x".repeat(10_000);
        let e = err(&GOOD.replace("name = \"t\"", &format!("name = \"{long}\"")));
        assert!(e.contains("`name`") && e.contains("10000 characters long; at most 200"), "{e}");
        assert!(e.len() < 200, "the name is not printed whole: {e}");
        let e = err(&GOOD.replace("path = \"m.onnx\"", &format!("path = \"m.onnx\"\nname = \"{long}\"")));
        assert!(e.contains("`models[0].name`"), "{e}");
        let e = err(&GOOD.replace("name = \"t\"", "name = \"a\\nb\""));
        assert!(e.contains("control characters"), "{e}");
    }

    #[test]
    fn grids_without_pairs_are_refused() {
        let e = SweepSpec::from_toml(&GOOD.replace("max_shift = 2", "max_shift = 0")).unwrap_err().to_string();
        assert!(e.contains("`families[0]`") && e.contains("1 grid point(s) and no neighbouring pairs"), "{e}");
        let rot = GOOD.replace("kind = \"crop\"\nmax_shift = 2", "kind = \"rotate\"\nfrom = 5.0\nto = 5.0");
        let e = SweepSpec::from_toml(&rot).unwrap_err().to_string();
        assert!(e.contains("`families[0]`") && e.contains("no neighbouring pairs"), "{e}");
    }

    #[test]
    fn sequences_need_no_dataset_but_other_families_do() {
        let seq = "name = \"s\"\n[[models]]\npath = \"m.onnx\"\n[[families]]\nkind = \"sequence\"\npath = \"frames\"\n";
        let s = SweepSpec::from_toml(seq).unwrap();
        assert!(s.dataset.is_none());
        let mixed = format!("{seq}[[families]]\nkind = \"crop\"\nmax_shift = 1\n");
        let e = SweepSpec::from_toml(&mixed).unwrap_err().to_string();
        assert!(e.contains("`dataset`") && e.contains("families[1]"), "{e}");
        let bad = format!("{seq}[metrics]\nfamilies = [\"crop\"]\n");
        assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("`metrics.families[0]`"));
        let typo = format!("{seq}[metrics]\nbaseline_model = \"x\"\n");
        assert!(SweepSpec::from_toml(&typo).unwrap_err().to_string().contains("`metrics`"));
        let stride = seq.replace("path = \"frames\"", "path = \"frames\"\nframes = 4\nstride = 4");
        assert!(SweepSpec::from_toml(&stride).unwrap_err().to_string().contains("families[0].stride"));
    }

    #[test]
    fn selectors_name_families_by_kind_or_position() {
        let s = SweepSpec::from_toml(GOOD).unwrap();
        assert!(selects("crop", &s.families, 0) && selects("families[1]", &s.families, 1));
        assert!(!selects("crop", &s.families, 1) && !selects("families[0]", &s.families, 1));
    }

    #[test]
    fn shard_target_seconds_may_be_written_as_an_integer() {
        let s = SweepSpec::from_toml("name = \"x\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n[[families]]\nkind = \"crop\"\nmax_shift = 1\n[shard]\ntarget_seconds = 30\n").unwrap();
        assert_eq!(s.shard.target_seconds, 30.0);
    }

    #[test]
    fn families_carry_labels_that_name_and_select_them() {
        let text = "name = \"l\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n\
                    [[families]]\nkind = \"crop\"\nmax_shift = 2\nlabel = \"Shifted\"\n[[families]]\nkind = \"diagonal\"\nsteps = 3\n\
                    [metrics]\nfamilies = [\"Shifted\"]\n";
        let s = SweepSpec::from_toml(text).unwrap();
        assert_eq!(s.family_labels, vec![Some("Shifted".to_string()), None]);
        assert_eq!((s.family_label(0), s.family_label(1)), ("Shifted".to_string(), "diagonal".to_string()));
        assert!(s.selects("Shifted", 0) && s.selects("crop", 0) && !s.selects("Shifted", 1));
        // Unlabelled specs keep their serialized form (and content hash).
        let plain = SweepSpec::from_toml(&text.replace("label = \"Shifted\"\n", "").replace("[\"Shifted\"]", "[\"crop\"]")).unwrap();
        assert!(plain.family_labels.is_empty() && !toml::to_string(&plain).unwrap().contains("family_labels"));
        let twice = text.replace("steps = 3\n", "steps = 3\nlabel = \"Shifted\"\n");
        assert!(SweepSpec::from_toml(&twice).unwrap_err().to_string().contains("labels two families"));
        let number = text.replace("label = \"Shifted\"", "label = 3");
        assert!(SweepSpec::from_toml(&number).unwrap_err().to_string().contains("families[0].label"));
        let top = format!("family_labels = [\"x\"]\n{text}");
        assert!(SweepSpec::from_toml(&top).unwrap_err().to_string().contains("`label = \"...\"`"));
        // An error in a labelled family is still located.
        let bad = text.replace("max_shift = 2", "max_shift = -2");
        assert!(SweepSpec::from_toml(&bad).unwrap_err().to_string().contains("families[0]"), "{}", SweepSpec::from_toml(&bad).unwrap_err());
    }
}
