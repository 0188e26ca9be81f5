//! Conversions between the wire messages and the domain types, both ways, in
//! one place. Domain to wire is infallible (`From`); wire to domain checks what
//! protobuf cannot express (required messages present, enum values known,
//! three-channel normalisation) and names the field that breaks it
//! (`TryFrom`, [`ConvertError`]).

use crate::v1 as pb;
use jagged_domain::image::{Compat, Filter, JpegDecoder, Resample};
use jagged_domain::lease::ShardState;
use jagged_domain::spec::{
    Antialiased, DatasetSpec, ImageRef, Layout, MetricsSpec, ModelCard, ModelSpec, OutputKind, Published, ResolvedModel, ResolvedSweep, RunSpec,
    ShardSpec, Structure, SweepSpec, Unlisted,
};
use jagged_domain::status::{ItemFailures, ShardError, Submitted, SweepState, SweepStatus};
use jagged_domain::task::{FailedItem, ShardTask, TaskItem, WidenFrom};
use jagged_domain::transform::{
    Background, Circular, Compare, Crop, Diagonal, DiagonalBase, Embed, EmbedCrop, Family, Layers, Normalize, Radius, RandomPairs, Rotate, Scale,
    Sequence,
};

/// A message that does not describe a valid domain value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed message: `{field}` {problem}")]
pub struct ConvertError {
    /// The field, as `Message.field`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(field: &str, problem: impl Into<String>) -> ConvertError {
    ConvertError { field: field.to_string(), problem: problem.into() }
}

/// A required sub-message.
fn need<T>(v: Option<T>, field: &str) -> Result<T, ConvertError> {
    v.ok_or_else(|| bad(field, "is missing"))
}

/// Converts every element, failing on the first that does not convert.
fn all<A, B: TryFrom<A, Error = ConvertError>>(v: Vec<A>) -> Result<Vec<B>, ConvertError> {
    v.into_iter().map(B::try_from).collect()
}

fn map<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(B::from).collect()
}

/// Structs whose fields are the same on both sides, by name and type:
/// `From` both ways.
macro_rules! mirror {
    ($($dom:ident <=> $pb:ident { $($f:ident),+ $(,)? })+) => {$(
        impl From<$dom> for pb::$pb {
            fn from(v: $dom) -> pb::$pb {
                pb::$pb { $($f: v.$f),+ }
            }
        }

        impl From<pb::$pb> for $dom {
            fn from(v: pb::$pb) -> $dom {
                $dom { $($f: v.$f),+ }
            }
        }
    )+};
}

mirror! {
    Structure <=> Structure { factor, subsampling_ops, blurred_ops }
    ImageRef <=> Item { name, key, label, frames }
    FailedItem <=> FailedItem { index, name, reason }
    ShardError <=> ShardError { shard_id, model, family, error }
    ItemFailures <=> ItemFailures { reason, count, example }
    Published <=> Published { model, family, metric, value, source }
    ModelSpec <=> ModelSource { name, path, uri, card }
    Submitted <=> SubmitResponse {
        sweep_id,
        shards,
        existing,
        reused_shards,
        reused_inferences,
        reused_from,
        widened_pairs,
        widened_inferences,
        widened_full,
        widened_from,
    }
}

/// Structs with some fields the same on both sides (`same`) and others
/// converted by expressions over the value `$v`: `From` domain -> wire and
/// `TryFrom` wire -> domain.
macro_rules! convert {
    (
        $v:ident: $dom:ident <=> $pb:ident { same: [$($f:ident),* $(,)?] }
        to_wire { $($wf:ident: $we:expr),* $(,)? }
        from_wire { $($df:ident: $de:expr),* $(,)? }
    ) => {
        impl From<$dom> for pb::$pb {
            fn from($v: $dom) -> pb::$pb {
                pb::$pb { $($wf: $we,)* $($f: $v.$f),* }
            }
        }

        impl TryFrom<pb::$pb> for $dom {
            type Error = ConvertError;
            fn try_from($v: pb::$pb) -> Result<$dom, ConvertError> {
                Ok($dom { $($df: $de,)* $($f: $v.$f),* })
            }
        }
    };
}

// ----- enums ---------------------------------------------------------------

/// Wire enum <-> domain enum, with `UNSPECIFIED` and unknown values refused.
macro_rules! enum_conv {
    ($pb:ident, $dom:ty, $field:literal, { $($p:ident <=> $d:path),+ $(,)? }) => {
        impl From<$dom> for pb::$pb {
            fn from(v: $dom) -> pb::$pb {
                match v { $($d => pb::$pb::$p,)+ }
            }
        }

        impl TryFrom<i32> for WireEnum<$dom> {
            type Error = ConvertError;
            fn try_from(v: i32) -> Result<WireEnum<$dom>, ConvertError> {
                match pb::$pb::try_from(v) {
                    $(Ok(pb::$pb::$p) => Ok(WireEnum($d)),)+
                    _ => Err(bad($field, format!("has no known value ({v})"))),
                }
            }
        }
    };
}

/// A domain enum read from its wire number.
struct WireEnum<T>(T);

/// A domain enum read from its wire number, the unspecified value (0, which
/// older peers send for fields they do not know) as the domain default.
fn or_default<T: Default>(v: i32) -> Result<T, ConvertError>
where
    WireEnum<T>: TryFrom<i32, Error = ConvertError>,
{
    if v == 0 {
        Ok(T::default())
    } else {
        enum_of(v)
    }
}

fn enum_of<T>(v: i32) -> Result<T, ConvertError>
where
    WireEnum<T>: TryFrom<i32, Error = ConvertError>,
{
    WireEnum::<T>::try_from(v).map(|w| w.0)
}

enum_conv!(Filter, Filter, "Resample.filter", { Nearest <=> Filter::Nearest, Bilinear <=> Filter::Bilinear, Bicubic <=> Filter::Bicubic });
enum_conv!(Background, Background, "background", { Black <=> Background::Black, Mean <=> Background::Mean, Inpaint <=> Background::Inpaint });
enum_conv!(DiagonalBase, DiagonalBase, "Diagonal.base", { Crop <=> DiagonalBase::Crop, Embed <=> DiagonalBase::Embed });
enum_conv!(Compat, Compat, "Resample.compat", { Float <=> Compat::Float, Pillow <=> Compat::Pillow, Torchvision <=> Compat::Torchvision });
enum_conv!(JpegDecoder, JpegDecoder, "jpeg_decoder", { Builtin <=> JpegDecoder::Builtin, LibjpegTurbo <=> JpegDecoder::LibjpegTurbo });
enum_conv!(EmbedCrop, EmbedCrop, "crop", { Square <=> EmbedCrop::Square, None <=> EmbedCrop::None });
enum_conv!(Compare, Compare, "Sequence.compare", { Previous <=> Compare::Previous, First <=> Compare::First });
enum_conv!(Layout, Layout, "Dataset.layout", { Auto <=> Layout::Auto, Images <=> Layout::Images, Classes <=> Layout::Classes });
enum_conv!(Unlisted, Unlisted, "Dataset.unlisted", { Refuse <=> Unlisted::Refuse, Skip <=> Unlisted::Skip, Unlabelled <=> Unlisted::Unlabelled });
enum_conv!(OutputKind, OutputKind, "ModelCard.output", { Logits <=> OutputKind::Logits, Probabilities <=> OutputKind::Probabilities });
enum_conv!(SweepState, SweepState, "SweepStatus.state", { Running <=> SweepState::Running, Done <=> SweepState::Done, Failed <=> SweepState::Failed, Cancelled <=> SweepState::Cancelled });
enum_conv!(ShardState, ShardState, "FailResponse.state", {
    Queued <=> ShardState::Queued,
    Leased <=> ShardState::Leased,
    Done <=> ShardState::Done,
    Failed <=> ShardState::Failed,
    Cancelled <=> ShardState::Cancelled,
});

/// The domain sweep state of a wire number.
pub fn sweep_state(v: i32) -> Result<SweepState, ConvertError> {
    enum_of(v)
}

/// The domain shard state of a wire number.
pub fn shard_state(v: i32) -> Result<ShardState, ConvertError> {
    enum_of(v)
}

// ----- families ------------------------------------------------------------

impl From<Resample> for pb::Resample {
    fn from(r: Resample) -> pb::Resample {
        pb::Resample { filter: pb::Filter::from(r.filter) as i32, antialias: r.antialias, compat: pb::Compat::from(r.compat) as i32 }
    }
}

fn resample(r: Option<pb::Resample>, field: &str) -> Result<Resample, ConvertError> {
    let r = need(r, field)?;
    Ok(Resample { filter: enum_of(r.filter)?, antialias: r.antialias, compat: or_default(r.compat)? })
}

impl From<Family> for pb::Family {
    fn from(f: Family) -> pb::Family {
        use pb::family::Kind;
        let bg = |b: Background| pb::Background::from(b) as i32;
        let kind = match f {
            Family::Crop(Crop { max_shift, step, resize, resample }) => {
                Kind::Crop(pb::Crop { max_shift, step, resize, resample: Some(resample.into()) })
            }
            Family::Embed(Embed { size, crop, max_shift, step, background, resample }) => Kind::Embed(pb::Embed {
                size,
                max_shift,
                step,
                background: bg(background),
                resample: Some(resample.into()),
                crop: pb::EmbedCrop::from(crop) as i32,
            }),
            Family::Diagonal(Diagonal { steps, step, from, to, base, resize, size, crop, background, resample }) => Kind::Diagonal(pb::Diagonal {
                steps,
                step,
                from,
                to,
                base: pb::DiagonalBase::from(base) as i32,
                resize,
                size,
                crop: pb::EmbedCrop::from(crop) as i32,
                background: bg(background),
                resample: Some(resample.into()),
            }),
            Family::Circular(Circular { max_shift, step, resize, resample }) => {
                Kind::Circular(pb::Circular { max_shift, step, resize, resample: Some(resample.into()) })
            }
            Family::Scale(Scale { from, to, step, base, background, resample }) => {
                Kind::Scale(pb::Scale { from, to, step, base, background: bg(background), resample: Some(resample.into()) })
            }
            Family::RandomPairs(RandomPairs { pairs, max_offset, seed, resize, resample }) => {
                Kind::RandomPairs(pb::RandomPairs { pairs, max_offset, seed, resize, resample: Some(resample.into()) })
            }
            Family::Sequence(Sequence { path, frames, stride, compare, resize, resample, labels, limit }) => Kind::Sequence(pb::Sequence {
                path,
                frames,
                stride,
                compare: pb::Compare::from(compare) as i32,
                resize,
                resample: Some(resample.into()),
                labels,
                limit,
            }),
            Family::Radius(Radius { max_radius, resize, resample }) => {
                Kind::Radius(pb::Radius { max_radius, resize, resample: Some(resample.into()) })
            }
            Family::Layers(Layers { shifts, resize, resample }) => Kind::Layers(pb::Layers { shifts, resize, resample: Some(resample.into()) }),
            Family::Rotate(Rotate { from, to, step, resize, resample }) => {
                Kind::Rotate(pb::Rotate { from, to, step, resize, resample: Some(resample.into()) })
            }
            // Families added after these ten travel as their spec's JSON.
            #[allow(unreachable_patterns)]
            other => Kind::Json(serde_json::to_string(&other).expect("a family serialises")),
        };
        pb::Family { kind: Some(kind) }
    }
}

impl TryFrom<pb::Family> for Family {
    type Error = ConvertError;
    fn try_from(f: pb::Family) -> Result<Family, ConvertError> {
        use pb::family::Kind;
        Ok(match need(f.kind, "Family.kind")? {
            Kind::Crop(c) => {
                Family::Crop(Crop { max_shift: c.max_shift, step: c.step, resize: c.resize, resample: resample(c.resample, "Crop.resample")? })
            }
            Kind::Embed(e) => Family::Embed(Embed {
                size: e.size,
                crop: or_default(e.crop)?,
                max_shift: e.max_shift,
                step: e.step,
                background: enum_of(e.background)?,
                resample: resample(e.resample, "Embed.resample")?,
            }),
            Kind::Diagonal(d) => Family::Diagonal(Diagonal {
                steps: d.steps,
                step: if d.step == 0.0 { 1.0 } else { d.step },
                from: d.from,
                to: d.to,
                base: enum_of(d.base)?,
                resize: d.resize,
                size: d.size,
                crop: or_default(d.crop)?,
                background: enum_of(d.background)?,
                resample: resample(d.resample, "Diagonal.resample")?,
            }),
            Kind::Circular(c) => Family::Circular(Circular {
                max_shift: c.max_shift,
                step: c.step,
                resize: c.resize,
                resample: resample(c.resample, "Circular.resample")?,
            }),
            Kind::Scale(s) => Family::Scale(Scale {
                from: s.from,
                to: s.to,
                step: s.step,
                base: s.base,
                background: enum_of(s.background)?,
                resample: resample(s.resample, "Scale.resample")?,
            }),
            Kind::RandomPairs(r) => Family::RandomPairs(RandomPairs {
                pairs: r.pairs,
                max_offset: r.max_offset,
                seed: r.seed,
                resize: r.resize,
                resample: resample(r.resample, "RandomPairs.resample")?,
            }),
            Kind::Sequence(s) => Family::Sequence(Sequence {
                path: s.path,
                frames: s.frames,
                stride: s.stride,
                compare: enum_of(s.compare)?,
                resize: s.resize,
                resample: resample(s.resample, "Sequence.resample")?,
                labels: s.labels,
                limit: s.limit,
            }),
            Kind::Radius(r) => {
                Family::Radius(Radius { max_radius: r.max_radius, resize: r.resize, resample: resample(r.resample, "Radius.resample")? })
            }
            Kind::Layers(l) => Family::Layers(Layers { shifts: l.shifts, resize: l.resize, resample: resample(l.resample, "Layers.resample")? }),
            Kind::Rotate(r) => {
                Family::Rotate(Rotate { from: r.from, to: r.to, step: r.step, resize: r.resize, resample: resample(r.resample, "Rotate.resample")? })
            }
            Kind::Json(text) => serde_json::from_str(&text).map_err(|e| bad("Family.json", e.to_string()))?,
        })
    }
}

// ----- models and items ----------------------------------------------------

/// A normalisation from its wire form: three values per channel list.
fn normalize(n: Option<pb::Normalize>) -> Result<Normalize, ConvertError> {
    let n = need(n, "ModelCard.normalize")?;
    let three = |v: Vec<f32>, field: &str| -> Result<[f32; 3], ConvertError> {
        <[f32; 3]>::try_from(v.as_slice()).map_err(|_| bad(field, format!("needs 3 values (RGB), has {}", v.len())))
    };
    Ok(Normalize { mean: three(n.mean, "Normalize.mean")?, std: three(n.std, "Normalize.std")? })
}

convert! {
    c: ModelCard <=> ModelCard { same: [name, input_name, output_name, input_size, num_classes, classes, wnids, untrained, source, license] }
    to_wire {
        normalize: Some(pb::Normalize { mean: c.normalize.mean.to_vec(), std: c.normalize.std.to_vec() }),
        output: pb::OutputKind::from(c.output) as i32,
        antialiased: c.antialiased.map(|a| pb::Antialiased { filter: a.filter, parent_sha256: a.parent_sha256, parent: a.parent }),
    }
    from_wire {
        normalize: normalize(c.normalize)?,
        output: enum_of(c.output)?,
        antialiased: c.antialiased.map(|a| Antialiased { filter: a.filter, parent_sha256: a.parent_sha256, parent: a.parent }),
    }
}

convert! {
    m: ResolvedModel <=> Model { same: [name, key] }
    to_wire { card: Some(m.card.into()), structure: m.structure.map(Into::into) }
    from_wire { card: need(m.card, "Model.card")?.try_into()?, structure: m.structure.map(Into::into) }
}

// ----- the spec and the resolved sweep -------------------------------------

impl From<SweepSpec> for pb::SweepSpec {
    fn from(s: SweepSpec) -> pb::SweepSpec {
        pb::SweepSpec {
            name: s.name,
            priority: s.priority,
            dataset: s.dataset.map(Into::into),
            models: map(s.models),
            families: map(s.families),
            shard: Some(pb::ShardSettings {
                images: s.shard.images,
                target_seconds: s.shard.target_seconds,
                target_inferences: s.shard.target_inferences,
                max_attempts: s.shard.max_attempts,
            }),
            run: Some(pb::RunSettings {
                batch_size: s.run.batch_size,
                keep_probs: s.run.keep_probs,
                jpeg_decoder: pb::JpegDecoder::from(s.run.jpeg_decoder) as i32,
            }),
            metrics: Some(pb::MetricSettings { baseline: s.metrics.baseline, families: s.metrics.families.map(|names| pb::Selectors { names }) }),
            published: map(s.published),
            family_labels: s.family_labels.into_iter().map(Option::unwrap_or_default).collect(),
        }
    }
}

impl TryFrom<pb::SweepSpec> for SweepSpec {
    type Error = ConvertError;
    fn try_from(s: pb::SweepSpec) -> Result<SweepSpec, ConvertError> {
        let shard = need(s.shard, "SweepSpec.shard")?;
        let run = need(s.run, "SweepSpec.run")?;
        let metrics = need(s.metrics, "SweepSpec.metrics")?;
        Ok(SweepSpec {
            name: s.name,
            priority: s.priority,
            dataset: s.dataset.map(TryInto::try_into).transpose()?,
            models: map(s.models),
            families: all(s.families)?,
            shard: ShardSpec {
                images: shard.images,
                target_seconds: shard.target_seconds,
                target_inferences: shard.target_inferences,
                max_attempts: shard.max_attempts,
            },
            run: RunSpec { batch_size: run.batch_size, keep_probs: run.keep_probs, jpeg_decoder: or_default(run.jpeg_decoder)? },
            metrics: MetricsSpec { baseline: metrics.baseline, families: metrics.families.map(|f| f.names) },
            published: map(s.published),
            family_labels: if s.family_labels.iter().all(String::is_empty) {
                vec![]
            } else {
                s.family_labels.into_iter().map(|l| (!l.is_empty()).then_some(l)).collect()
            },
        })
    }
}

impl From<ResolvedSweep> for pb::Sweep {
    fn from(s: ResolvedSweep) -> pb::Sweep {
        pb::Sweep {
            spec: Some(s.spec.into()),
            models: map(s.models),
            images: map(s.images),
            family_items: s.family_items.into_iter().map(|(f, items)| (f, pb::ItemList { items: map(items) })).collect(),
        }
    }
}

impl TryFrom<pb::Sweep> for ResolvedSweep {
    type Error = ConvertError;
    fn try_from(s: pb::Sweep) -> Result<ResolvedSweep, ConvertError> {
        Ok(ResolvedSweep {
            spec: need(s.spec, "Sweep.spec")?.try_into()?,
            models: all(s.models)?,
            images: map(s.images),
            family_items: s.family_items.into_iter().map(|(f, l)| (f, map(l.items))).collect(),
        })
    }
}

// ----- shards --------------------------------------------------------------

convert! {
    t: ShardTask <=> ShardTask { same: [shard_id, lease_epoch, attempt, sweep_id, family_index, batch_size, keep_probs, lease_deadline_ms, ring] }
    to_wire {
        model: Some(t.model.into()),
        family: Some(t.family.into()),
        jpeg_decoder: pb::JpegDecoder::from(t.jpeg_decoder) as i32,
        items: t.items.into_iter().map(|i| pb::ShardItem { index: i.index, item: Some(i.image.into()), reference_top1: i.reference }).collect(),
        widen: t.widen.map(|w| pb::Widen {
            family: Some(w.family.into()),
            parts: w.parts.into_iter().map(|(object_key, sha256)| pb::PartRef { object_key, sha256 }).collect(),
        }),
    }
    from_wire {
        model: need(t.model, "ShardTask.model")?.try_into()?,
        family: need(t.family, "ShardTask.family")?.try_into()?,
        jpeg_decoder: or_default(t.jpeg_decoder)?,
        items: t
            .items
            .into_iter()
            .map(|i| Ok(TaskItem { index: i.index, image: need(i.item, "ShardItem.item")?.into(), reference: i.reference_top1 }))
            .collect::<Result<_, ConvertError>>()?,
        widen: t
            .widen
            .map(|w| -> Result<WidenFrom, ConvertError> {
                Ok(WidenFrom {
                    family: need(w.family, "Widen.family")?.try_into()?,
                    parts: w.parts.into_iter().map(|p| (p.object_key, p.sha256)).collect(),
                })
            })
            .transpose()?,
    }
}

convert! {
    d: DatasetSpec <=> Dataset { same: [path, labels, limit] }
    to_wire { layout: pb::Layout::from(d.layout) as i32, unlisted: pb::Unlisted::from(d.unlisted) as i32 }
    from_wire { layout: enum_of(d.layout)?, unlisted: enum_of(d.unlisted)? }
}

// ----- status --------------------------------------------------------------

convert! {
    s: SweepStatus <=> SweepStatus {
        same: [
            sweep_id, name, priority, total, queued, leased, done, failed, cancelled, inferences_done, inferences_failed, inferences_total, failed_items,
            created_at,
            workers_alive, inferences_per_sec, eta_secs, busy_seconds, busy_seconds_lost, estimated_cost,
        ]
    }
    to_wire {
        state: pb::SweepState::from(s.state) as i32,
        finished_at: s.finished_at.unwrap_or_default(),
        errors: map(s.errors),
        item_failures: map(s.item_failures),
    }
    from_wire {
        state: enum_of(s.state)?,
        finished_at: (!s.finished_at.is_empty()).then_some(s.finished_at),
        errors: map(s.errors),
        item_failures: map(s.item_failures),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
