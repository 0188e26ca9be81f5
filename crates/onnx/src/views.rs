//! Rendering a grid's inputs inside the model's graph.
//!
//! Every input of a crop, embed or sequence grid is a `side` x `side` view of
//! one prepared image (its resized copy, its embedded square, a frame) at an
//! integer position, with a background colour where the view falls outside the
//! image. [`prepend`] puts the rendering in front of a model as ONNX ops, so
//! ONNX Runtime renders on the model's own device: each image crosses to the
//! device once, as 8-bit pixels, and each input costs 40 bytes (its view)
//! instead of `3 * side * side` floats. The graph takes
//!
//! - `jagged_pixels`: uint8 `[P, 3]`, the RGB pixels of the images in the run,
//!   each row-major, one after another;
//! - `jagged_views`: int64 `[N, 5]`, per input: the index in `jagged_pixels` of
//!   its image's first pixel, the image's width and height, and the image pixel
//!   `(x0, y0)` shown at the input's top-left corner (either may be negative);
//! - `jagged_background`: float `[1, 3]`, the normalised value shown outside
//!   the image;
//!
//! and computes, for input `n`, channel `c`, row `y`, column `x`: the pixel
//! `(x0 + x, y0 + y)` of its image as `(v - mean[c]) * (1 / std[c])` in `f32`
//! (the same two operations, in the same order, as the host's rendering, so
//! the model sees bit-identical inputs), or the background where that pixel
//! lies outside the image. The ops (Cast, Sub, Mul, Concat, Gather, Reshape,
//! Add, Greater, Less, And, Where, Transpose) exist since opset 9 and run on
//! ONNX Runtime's CPU and CUDA providers.

use crate::pb;
use crate::OnnxError;
use jagged_domain::spec::ModelCard;
use prost::Message;

/// Name of the pixels input.
pub const PIXELS: &str = "jagged_pixels";
/// Name of the views input.
pub const VIEWS: &str = "jagged_views";
/// Name of the background input.
pub const BACKGROUND: &str = "jagged_background";
/// Columns of one view in [`VIEWS`].
pub const VIEW_COLUMNS: usize = 5;

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT64: i32 = 7;
const BOOL_AND: &str = "And";

fn int_tensor(name: &str, dims: &[i64], data: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto { name: Some(name.into()), dims: dims.to_vec(), data_type: Some(INT64), int64_data: data, ..Default::default() }
}

fn float_tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto { name: Some(name.into()), dims: dims.to_vec(), data_type: Some(FLOAT), float_data: data, ..Default::default() }
}

fn value(name: &str, elem: i32, dims: &[Result<i64, &str>]) -> pb::ValueInfoProto {
    let dim = |d: &Result<i64, &str>| pb::tensor_shape_proto::Dimension {
        value: Some(match d {
            Ok(v) => pb::tensor_shape_proto::dimension::Value::DimValue(*v),
            Err(p) => pb::tensor_shape_proto::dimension::Value::DimParam(p.to_string()),
        }),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(pb::TensorShapeProto { dim: dims.iter().map(dim).collect() }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Nodes and initializers of the rendering, every name under `jagged_views/`.
struct Ops {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
}

impl Ops {
    fn name(&self, what: &str) -> String {
        format!("jagged_views/{what}")
    }

    fn node(&mut self, op: &str, inputs: &[&str], out: &str, attribute: Vec<pb::AttributeProto>) -> String {
        self.nodes.push(pb::NodeProto {
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: Some(out.to_string()),
            attribute,
            ..Default::default()
        });
        out.to_string()
    }

    /// A node whose output gets a fresh name under the prefix.
    fn op(&mut self, op: &str, inputs: &[&str], what: &str, attribute: Vec<pb::AttributeProto>) -> String {
        let out = self.name(what);
        self.node(op, inputs, &out, attribute)
    }

    fn ints(&mut self, what: &str, dims: &[i64], data: Vec<i64>) -> String {
        let name = self.name(what);
        self.inits.push(int_tensor(&name, dims, data));
        name
    }

    fn floats(&mut self, what: &str, dims: &[i64], data: Vec<f32>) -> String {
        let name = self.name(what);
        self.inits.push(float_tensor(&name, dims, data));
        name
    }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), i: Some(v), r#type: Some(pb::attribute_proto::AttributeType::Int as i32), ..Default::default() }
}

fn ints_attr(name: &str, v: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), ints: v, r#type: Some(pb::attribute_proto::AttributeType::Ints as i32), ..Default::default() }
}

/// The rendering ops, ending in a float `[N, 3, side, side]` tensor named `out`.
fn render_ops(card: &ModelCard, out: &str) -> Ops {
    let side = card.input_size as i64;
    let mut g = Ops { nodes: Vec::new(), inits: Vec::new() };
    // The pixel table: normalised pixels after one background row (index 0).
    let mean = g.floats("mean", &[1, 3], card.normalize.mean.to_vec());
    let scale = g.floats("scale", &[1, 3], card.normalize.std.iter().map(|s| 1.0 / s).collect());
    let pf = g.op("Cast", &[PIXELS], "pixels_f32", vec![int_attr("to", FLOAT as i64)]);
    let centred = g.op("Sub", &[&pf, &mean], "centred", vec![]);
    let normed = g.op("Mul", &[&centred, &scale], "normalised", vec![]);
    let table = g.op("Concat", &[BACKGROUND, &normed], "table", vec![int_attr("axis", 0)]);
    // The views' columns, each [N, 1, 1].
    let per_view = g.ints("per_view", &[3], vec![-1, 1, 1]);
    let col = |g: &mut Ops, k: i64, what: &str| {
        let idx = g.ints(&format!("{what}_index"), &[1], vec![k]);
        let c = g.op("Gather", &[VIEWS, &idx], &format!("{what}_column"), vec![int_attr("axis", 1)]);
        g.op("Reshape", &[&c, &per_view], what, vec![])
    };
    let (start, w, h, x0, y0) =
        (col(&mut g, 0, "start"), col(&mut g, 1, "width"), col(&mut g, 2, "height"), col(&mut g, 3, "x0"), col(&mut g, 4, "y0"));
    let ry = g.ints("rows", &[1, side, 1], (0..side).collect());
    let rx = g.ints("cols", &[1, 1, side], (0..side).collect());
    let (minus_one, zero, one) = (g.ints("minus_one", &[1], vec![-1]), g.ints("zero", &[1], vec![0]), g.ints("one", &[1], vec![1]));
    let y = g.op("Add", &[&y0, &ry], "y", vec![]);
    let x = g.op("Add", &[&x0, &rx], "x", vec![]);
    let y_lo = g.op("Greater", &[&y, &minus_one], "y_lo", vec![]);
    let y_hi = g.op("Less", &[&y, &h], "y_hi", vec![]);
    let x_lo = g.op("Greater", &[&x, &minus_one], "x_lo", vec![]);
    let x_hi = g.op("Less", &[&x, &w], "x_hi", vec![]);
    let in_y = g.op(BOOL_AND, &[&y_lo, &y_hi], "in_y", vec![]);
    let in_x = g.op(BOOL_AND, &[&x_lo, &x_hi], "in_x", vec![]);
    let inside = g.op(BOOL_AND, &[&in_y, &in_x], "inside", vec![]);
    // Row index in the table: 1 + start + y * width + x, or 0 (the background).
    let first = g.op("Add", &[&start, &one], "first", vec![]);
    let row = g.op("Mul", &[&y, &w], "row", vec![]);
    let at_row = g.op("Add", &[&first, &row], "at_row", vec![]);
    let at = g.op("Add", &[&at_row, &x], "at", vec![]);
    let index = g.op("Where", &[&inside, &at, &zero], "index", vec![]);
    let nhwc = g.op("Gather", &[&table, &index], "nhwc", vec![int_attr("axis", 0)]);
    g.node("Transpose", &[&nhwc], out, vec![ints_attr("perm", vec![0, 3, 1, 2])]);
    g
}

fn inputs() -> Vec<pb::ValueInfoProto> {
    vec![
        value(PIXELS, UINT8, &[Err("P"), Ok(3)]),
        value(VIEWS, INT64, &[Err("N"), Ok(VIEW_COLUMNS as i64)]),
        value(BACKGROUND, FLOAT, &[Ok(1), Ok(3)]),
    ]
}

/// The model with the rendering in front: its image input (`card.input_name`)
/// replaced by the three inputs above, its outputs unchanged.
pub fn prepend(bytes: &[u8], card: &ModelCard) -> Result<Vec<u8>, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let opset = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap_or(1);
    if opset < 9 {
        return Err(OnnxError::Graph(format!("the model's opset {opset} is older than 9, the first with the ops the rendering needs")));
    }
    let g = model.graph.as_mut().ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let at = g
        .input
        .iter()
        .position(|i| i.name() == card.input_name)
        .ok_or_else(|| OnnxError::Graph(format!("the graph has no input `{}`", card.input_name)))?;
    let taken = |n: &str| n.starts_with("jagged_views/") || [PIXELS, VIEWS, BACKGROUND].contains(&n);
    if g.node.iter().flat_map(|n| n.output.iter()).chain(g.initializer.iter().filter_map(|t| t.name.as_ref())).any(|n| taken(n)) {
        return Err(OnnxError::Graph("the graph already uses the rendering's tensor names".into()));
    }
    g.input.remove(at);
    g.input.splice(0..0, inputs());
    let ops = render_ops(card, &card.input_name);
    g.node.splice(0..0, ops.nodes);
    g.initializer.extend(ops.inits);
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepending_replaces_the_image_input_and_keeps_the_outputs() {
        let tiny = crate::tiny::build(&crate::tiny::TinySpec::default());
        let out = prepend(&tiny.bytes, &tiny.card).unwrap();
        let m = pb::ModelProto::decode(out.as_slice()).unwrap();
        let g = m.graph.unwrap();
        let names: Vec<&str> = g.input.iter().map(|i| i.name()).collect();
        assert_eq!(names, vec![PIXELS, VIEWS, BACKGROUND]);
        assert_eq!(g.output.iter().map(|o| o.name()).collect::<Vec<_>>(), vec![tiny.card.output_name.as_str()]);
        let producers = g.node.iter().filter(|n| n.output.contains(&tiny.card.input_name)).count();
        assert_eq!(producers, 1, "exactly one node makes the image input");
        // Twice is refused rather than colliding.
        assert!(prepend(&out, &tiny.card).is_err());
        let mut card = tiny.card.clone();
        card.input_name = "nope".into();
        assert!(prepend(&tiny.bytes, &card).unwrap_err().to_string().contains("no input `nope`"));
    }
}
