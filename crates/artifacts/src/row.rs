//! One result row, and the Parquet schema of a part (`docs/results.md`).

use crate::LayerError;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// One result row: one grid point of one image under one model and family.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    /// Sweep id.
    pub sweep_id: i64,
    /// Shard id.
    pub shard_id: i64,
    /// Attempt that wrote the row.
    pub attempt: i32,
    /// Model name.
    pub model: String,
    /// Family name (`crop`, `embed`, `diagonal`).
    pub family: String,
    /// Index of the family in the spec.
    pub family_index: i32,
    /// Image index in the sweep.
    pub image_index: i32,
    /// Image name (path relative to the dataset root).
    pub image_name: String,
    /// True class, if labelled.
    pub label: Option<i32>,
    /// Grid point index.
    pub point: i32,
    /// Horizontal offset in pixels (fractional on sub-pixel grids).
    pub dx: f32,
    /// Vertical offset in pixels.
    pub dy: f32,
    /// Scale factor of the point (1 when the family does not scale).
    pub scale: f32,
    /// Rotation of the point in degrees (0 when the family does not rotate).
    pub angle: f32,
    /// Whether this is the family's reference point.
    pub is_reference: bool,
    /// argmax.
    pub top1: i32,
    /// Top-5 classes, descending probability.
    pub top5_class: Vec<i32>,
    /// Their probabilities.
    pub top5_prob: Vec<f32>,
    /// p(true class).
    pub p_label: Option<f32>,
    /// p(argmax class of the reference point).
    pub p_ref_top1: f32,
    /// Neighbour pairs whose first point is this one.
    pub fwd_pairs: i32,
    /// Of those, pairs with a different argmax.
    pub fwd_top1_changes: i32,
    /// Sum over those pairs of |p_c(x) - p_c(x')|, c = argmax p(x).
    pub fwd_abs_diff: f64,
    /// Of those, pairs where the true class enters or leaves the top-5.
    pub fwd_top5_transitions: i32,
    /// Sum over those pairs of ImageNet-P's top-5 distance.
    pub fwd_top5_dist: i32,
    /// Execution provider (`cpu`, `cuda`).
    pub provider: String,
    /// Numeric precision (`fp32`).
    pub precision: String,
    /// Where the input was rendered: `host`, or `graph` (inside the model's
    /// graph, by ONNX Runtime on its device); `host` in parts written before.
    pub render: String,
    /// Full probability vector, when the spec asks for it.
    pub probs: Option<Vec<f32>>,
    /// Per-layer errors of this point against the reference, one per probed
    /// node in graph order (`layers` family only).
    pub layers: Option<Vec<LayerError>>,
}

/// The Arrow schema of result parts.
pub fn schema() -> SchemaRef {
    let list_i32 = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let list_f32 = DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
    Arc::new(Schema::new(vec![
        Field::new("sweep_id", DataType::Int64, false),
        Field::new("shard_id", DataType::Int64, false),
        Field::new("attempt", DataType::Int32, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("family", DataType::Utf8, false),
        Field::new("family_index", DataType::Int32, false),
        Field::new("image_index", DataType::Int32, false),
        Field::new("image_name", DataType::Utf8, false),
        Field::new("label", DataType::Int32, true),
        Field::new("point", DataType::Int32, false),
        Field::new("dx", DataType::Float32, false),
        Field::new("dy", DataType::Float32, false),
        Field::new("scale", DataType::Float32, false),
        Field::new("angle", DataType::Float32, false),
        Field::new("is_reference", DataType::Boolean, false),
        Field::new("top1", DataType::Int32, false),
        Field::new("top5_class", list_i32, false),
        Field::new("top5_prob", list_f32.clone(), false),
        Field::new("p_label", DataType::Float32, true),
        Field::new("p_ref_top1", DataType::Float32, false),
        Field::new("fwd_pairs", DataType::Int32, false),
        Field::new("fwd_top1_changes", DataType::Int32, false),
        Field::new("fwd_abs_diff", DataType::Float64, false),
        Field::new("fwd_top5_transitions", DataType::Int32, false),
        Field::new("fwd_top5_dist", DataType::Int32, false),
        Field::new("provider", DataType::Utf8, false),
        Field::new("precision", DataType::Utf8, false),
        Field::new("probs", list_f32, true),
        Field::new("layers", DataType::Utf8, true),
        Field::new("render", DataType::Utf8, false),
    ]))
}
