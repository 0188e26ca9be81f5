//! The tables of a sweep spec besides its families: the dataset, the models,
//! sharding, inference and metric settings, and published values.

use crate::transform::Family;
use serde::{Deserialize, Serialize};

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
pub(super) fn default_family_label(families: &[Family], f: usize) -> String {
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
