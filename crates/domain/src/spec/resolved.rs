//! A sweep once its files are located: models and images by content, as the
//! coordinator stores and plans it.

use super::{field, ModelCard, SpecError, Structure, SweepSpec};
use serde::{Deserialize, Serialize};

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
