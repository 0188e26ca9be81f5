//! A model's card (its ports, normalisation, classes and provenance) and
//! the subsampling structure read from its graph.

use crate::transform::Normalize;
use serde::{Deserialize, Serialize};

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
