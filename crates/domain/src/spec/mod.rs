//! The sweep spec (TOML) and its validation.
//!
//! A [`SweepSpec`] is what the user writes. The CLI locates its files, uploads
//! models and images to the object store and produces a [`ResolvedSweep`], which
//! the coordinator validates again and plans into shards. Every error names the
//! field it concerns, e.g. `families[1].max_shift`.
//!
//! - this file: [`SweepSpec`], read from TOML and checked field by field;
//! - `sections.rs`: its tables (`[dataset]`, `[[models]]`, `[shard]`, `[run]`,
//!   `[metrics]`, `[[published]]`);
//! - `card.rs`: a model's card ([`ModelCard`]) and its graph's structure;
//! - `resolved.rs`: the sweep once its files are located ([`ResolvedSweep`]).

mod card;
mod resolved;
mod sections;

pub use card::{Antialiased, ModelCard, OutputKind, Structure};
pub use resolved::{ImageRef, ResolvedModel, ResolvedSweep, RESOLVED_FORMAT};
pub use sections::{selects, DatasetSpec, Layout, MetricsSpec, ModelSpec, Published, RunSpec, ShardSpec, Unlisted, MAX_BATCH};

use crate::transform::Family;
use sections::default_family_label;
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
        self.validate_families()?;
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

    /// The families: at least one, each valid on its own, with pairs to
    /// compare, and none listed twice.
    fn validate_families(&self) -> Result<(), SpecError> {
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
        for (i, f) in self.families.iter().enumerate() {
            if let Some(j) = self.families[..i].iter().position(|g| g == f) {
                return Err(field(
                    format!("families[{i}]"),
                    format!(
                        "repeats `families[{j}]` (`{}`, every parameter the same): it would be computed and counted twice; list each family once",
                        f.name()
                    ),
                ));
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
        v.clone().try_into::<T>().err().map(|e| {
            let message = e.message().trim().to_string();
            let at = offending_key(v, &message).map(|k| format!("{name}.{k}")).unwrap_or(name);
            field(at, message)
        })
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

/// The key (`max_shift`, `resample.compat`) in `table` whose value a parse
/// error names (``invalid value: integer `-2` ``, ``unknown variant `Pillow` ``,
/// ``invalid type: string "x"``), when exactly one holds it.
fn offending_key(table: &toml::Value, message: &str) -> Option<String> {
    let quoted = |open: &str, close: char| message.split_once(open).and_then(|(_, rest)| rest.split_once(close)).map(|(v, _)| v.to_string());
    let value = quoted("`", '`').or_else(|| quoted("\"", '"'))?;
    let mut found = Vec::new();
    fn walk(v: &toml::Value, path: String, value: &str, found: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                t.iter().for_each(|(k, v)| walk(v, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, value, found))
            }
            toml::Value::String(s) if s == value => found.push(path),
            toml::Value::Integer(i) if i.to_string() == value => found.push(path),
            toml::Value::Float(f) if f.to_string() == value => found.push(path),
            _ => {}
        }
    }
    walk(table, String::new(), &value, &mut found);
    (found.len() == 1).then(|| found.remove(0))
}

#[cfg(test)]
mod tests;
