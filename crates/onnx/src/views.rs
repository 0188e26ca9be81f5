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
//!
//! A rotation grid's inputs are turns of one prepared image: [`prepend_turns`]
//! puts their rendering in front instead, taking the pixels, the views (start,
//! width, height) and [`TURNS`], each input's sine and cosine as the host
//! computes them, and sampling bilinearly with the host's operations in the
//! host's order (Floor, Div and the same elementwise ops besides), so on the
//! CPU provider its tensors equal the host's bit for bit, and elsewhere within
//! rounding.

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
/// Name of the turns input (rotations: sine and cosine per input).
pub const TURNS: &str = "jagged_turns";
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

    /// Column `k` of the `[N, C]` input `source`, as `[N, 1, 1]`.
    fn column(&mut self, source: &str, k: i64, what: &str) -> String {
        let idx = self.ints(&format!("{what}_index"), &[1], vec![k]);
        let per_view = self.ints(&format!("{what}_shape"), &[3], vec![-1, 1, 1]);
        let c = self.op("Gather", &[source, &idx], &format!("{what}_column"), vec![int_attr("axis", 1)]);
        self.op("Reshape", &[&c, &per_view], what, vec![])
    }

    /// The row of a table holding one row (index 0) before an image's pixels
    /// from `first` on: `first + y * w + x` for pixel `(x, y)` inside the
    /// `w` x `h` image, else 0.
    #[allow(clippy::too_many_arguments)]
    fn table_row(&mut self, x: &str, y: &str, w: &str, h: &str, first: &str, minus_one: &str, zero: &str, what: &str) -> String {
        let y_lo = self.op("Greater", &[y, minus_one], &format!("{what}y_lo"), vec![]);
        let y_hi = self.op("Less", &[y, h], &format!("{what}y_hi"), vec![]);
        let x_lo = self.op("Greater", &[x, minus_one], &format!("{what}x_lo"), vec![]);
        let x_hi = self.op("Less", &[x, w], &format!("{what}x_hi"), vec![]);
        let in_y = self.op(BOOL_AND, &[&y_lo, &y_hi], &format!("{what}in_y"), vec![]);
        let in_x = self.op(BOOL_AND, &[&x_lo, &x_hi], &format!("{what}in_x"), vec![]);
        let inside = self.op(BOOL_AND, &[&in_y, &in_x], &format!("{what}inside"), vec![]);
        let row = self.op("Mul", &[y, w], &format!("{what}row"), vec![]);
        let at_row = self.op("Add", &[first, &row], &format!("{what}at_row"), vec![]);
        let at = self.op("Add", &[&at_row, x], &format!("{what}at"), vec![]);
        self.op("Where", &[&inside, &at, zero], &format!("{what}index"), vec![])
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
    let (start, w, h) = (g.column(VIEWS, 0, "start"), g.column(VIEWS, 1, "width"), g.column(VIEWS, 2, "height"));
    let (x0, y0) = (g.column(VIEWS, 3, "x0"), g.column(VIEWS, 4, "y0"));
    let ry = g.ints("rows", &[1, side, 1], (0..side).collect());
    let rx = g.ints("cols", &[1, 1, side], (0..side).collect());
    let (minus_one, zero, one) = (g.ints("minus_one", &[1], vec![-1]), g.ints("zero", &[1], vec![0]), g.ints("one", &[1], vec![1]));
    let y = g.op("Add", &[&y0, &ry], "y", vec![]);
    let x = g.op("Add", &[&x0, &rx], "x", vec![]);
    // Row index in the table: 1 + start + y * width + x, or 0 (the background).
    let first = g.op("Add", &[&start, &one], "first", vec![]);
    let index = g.table_row(&x, &y, &w, &h, &first, &minus_one, &zero, "");
    let nhwc = g.op("Gather", &[&table, &index], "nhwc", vec![int_attr("axis", 0)]);
    g.node("Transpose", &[&nhwc], out, vec![ints_attr("perm", vec![0, 3, 1, 2])]);
    g
}

/// The rotations' ops, ending in a float `[N, 3, side, side]` tensor named
/// `out`: per input, its image turned about its centre and sampled bilinearly
/// with black outside, every step the host's (see
/// `jagged_domain::transform::Turn`) in the same order, then normalised.
fn turn_ops(card: &ModelCard, out: &str) -> Ops {
    let side = card.input_size as i64;
    let mut g = Ops { nodes: Vec::new(), inits: Vec::new() };
    // The pixel table: raw pixel values after one black row (index 0).
    let pf = g.op("Cast", &[PIXELS], "pixels_f32", vec![int_attr("to", FLOAT as i64)]);
    let black = g.floats("black", &[1, 3], vec![jagged_domain::transform::BLACK as f32; 3]);
    let table = g.op("Concat", &[&black, &pf], "table", vec![int_attr("axis", 0)]);
    let (start, w, h) = (g.column(VIEWS, 0, "start"), g.column(VIEWS, 1, "width"), g.column(VIEWS, 2, "height"));
    let (sin, cos) = (g.column(TURNS, 0, "sin"), g.column(TURNS, 1, "cos"));
    let offsets = jagged_domain::transform::rotation_offsets(side as usize);
    let u = g.floats("u", &[1, 1, side], offsets.clone());
    let v = g.floats("v", &[1, side, 1], offsets);
    let (two, half_px, one_f) = (g.floats("two", &[1], vec![2.0]), g.floats("half_pixel", &[1], vec![0.5]), g.floats("one_f", &[1], vec![1.0]));
    let wf = g.op("Cast", &[&w], "width_f32", vec![int_attr("to", FLOAT as i64)]);
    let hf = g.op("Cast", &[&h], "height_f32", vec![int_attr("to", FLOAT as i64)]);
    let cx = g.op("Div", &[&wf, &two], "cx", vec![]);
    let cy = g.op("Div", &[&hf, &two], "cy", vec![]);
    // sx = cos u - sin v + cx - 0.5; sy = sin u + cos v + cy - 0.5.
    let cos_u = g.op("Mul", &[&cos, &u], "cos_u", vec![]);
    let sin_v = g.op("Mul", &[&sin, &v], "sin_v", vec![]);
    let sin_u = g.op("Mul", &[&sin, &u], "sin_u", vec![]);
    let cos_v = g.op("Mul", &[&cos, &v], "cos_v", vec![]);
    let sx = g.op("Sub", &[&cos_u, &sin_v], "sx_0", vec![]);
    let sx = g.op("Add", &[&sx, &cx], "sx_1", vec![]);
    let sx = g.op("Sub", &[&sx, &half_px], "sx", vec![]);
    let sy = g.op("Add", &[&sin_u, &cos_v], "sy_0", vec![]);
    let sy = g.op("Add", &[&sy, &cy], "sy_1", vec![]);
    let sy = g.op("Sub", &[&sy, &half_px], "sy", vec![]);
    let fx = g.op("Floor", &[&sx], "fx", vec![]);
    let fy = g.op("Floor", &[&sy], "fy", vec![]);
    let ax = g.op("Sub", &[&sx, &fx], "ax_0", vec![]);
    let ay = g.op("Sub", &[&sy, &fy], "ay_0", vec![]);
    // [N, side, side, 1], to weigh the gathered RGB rows.
    let keep = g.ints("keep", &[4], vec![0, 0, 0, 1]);
    let ax = g.op("Reshape", &[&ax, &keep], "ax", vec![]);
    let ay = g.op("Reshape", &[&ay, &keep], "ay", vec![]);
    let ix = g.op("Cast", &[&fx], "ix", vec![int_attr("to", INT64 as i64)]);
    let iy = g.op("Cast", &[&fy], "iy", vec![int_attr("to", INT64 as i64)]);
    let (minus_one, zero, one) = (g.ints("minus_one", &[1], vec![-1]), g.ints("zero", &[1], vec![0]), g.ints("one", &[1], vec![1]));
    let ix1 = g.op("Add", &[&ix, &one], "ix1", vec![]);
    let iy1 = g.op("Add", &[&iy, &one], "iy1", vec![]);
    let first = g.op("Add", &[&start, &one], "first", vec![]);
    // One corner: the pixel's row in the table, 0 (black) outside the image.
    let corner = |g: &mut Ops, x: &str, y: &str, what: &str| {
        let index = g.table_row(x, y, &w, &h, &first, &minus_one, &zero, &format!("{what}_"));
        g.op("Gather", &[&table, &index], what, vec![int_attr("axis", 0)])
    };
    let (a, b) = (corner(&mut g, &ix, &iy, "a"), corner(&mut g, &ix1, &iy, "b"));
    let (c, d) = (corner(&mut g, &ix, &iy1, "c"), corner(&mut g, &ix1, &iy1, "d"));
    // top = a (1 - ax) + b ax; bottom = c (1 - ax) + d ax; top (1 - ay) + bottom ay.
    let rest_x = g.op("Sub", &[&one_f, &ax], "rest_x", vec![]);
    let rest_y = g.op("Sub", &[&one_f, &ay], "rest_y", vec![]);
    let lerp = |g: &mut Ops, p: &str, q: &str, rest: &str, t: &str, what: &str| {
        let pp = g.op("Mul", &[p, rest], &format!("{what}_p"), vec![]);
        let qq = g.op("Mul", &[q, t], &format!("{what}_q"), vec![]);
        g.op("Add", &[&pp, &qq], what, vec![])
    };
    let top = lerp(&mut g, &a, &b, &rest_x, &ax, "top");
    let bottom = lerp(&mut g, &c, &d, &rest_x, &ax, "bottom");
    let sampled = lerp(&mut g, &top, &bottom, &rest_y, &ay, "sampled");
    let mean = g.floats("mean", &[1, 3], card.normalize.mean.to_vec());
    let scale = g.floats("scale", &[1, 3], card.normalize.std.iter().map(|s| 1.0 / s).collect());
    let centred = g.op("Sub", &[&sampled, &mean], "centred", vec![]);
    let nhwc = g.op("Mul", &[&centred, &scale], "nhwc", vec![]);
    g.node("Transpose", &[&nhwc], out, vec![ints_attr("perm", vec![0, 3, 1, 2])]);
    g
}

/// What a rendering graph computes from its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Renderer {
    /// Plain windows ([`prepend`]).
    Windows,
    /// Turns ([`prepend_turns`]).
    Turns,
}

fn inputs(renderer: Renderer) -> Vec<pb::ValueInfoProto> {
    let mut v = vec![
        value(PIXELS, UINT8, &[Err("P"), Ok(3)]),
        value(VIEWS, INT64, &[Err("N"), Ok(VIEW_COLUMNS as i64)]),
        value(BACKGROUND, FLOAT, &[Ok(1), Ok(3)]),
    ];
    if renderer == Renderer::Turns {
        // Its background is black, before normalising: no background input.
        v.pop();
        v.push(value(TURNS, FLOAT, &[Err("N"), Ok(2)]));
    }
    v
}

/// The model with the rendering in front: its image input (`card.input_name`)
/// replaced by the three inputs above, its outputs unchanged.
pub fn prepend(bytes: &[u8], card: &ModelCard) -> Result<Vec<u8>, OnnxError> {
    prepend_as(bytes, card, Renderer::Windows)
}

/// The model with the rotations' rendering in front: its image input replaced
/// by [`PIXELS`], [`VIEWS`] (start, width and height; the last two columns
/// unused) and [`TURNS`] (each input's sine and cosine).
pub fn prepend_turns(bytes: &[u8], card: &ModelCard) -> Result<Vec<u8>, OnnxError> {
    prepend_as(bytes, card, Renderer::Turns)
}

/// The model with `renderer`'s graph in front.
pub fn prepend_as(bytes: &[u8], card: &ModelCard, renderer: Renderer) -> Result<Vec<u8>, OnnxError> {
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
    let taken = |n: &str| n.starts_with("jagged_views/") || [PIXELS, VIEWS, BACKGROUND, TURNS].contains(&n);
    if g.node.iter().flat_map(|n| n.output.iter()).chain(g.initializer.iter().filter_map(|t| t.name.as_ref())).any(|n| taken(n)) {
        return Err(OnnxError::Graph("the graph already uses the rendering's tensor names".into()));
    }
    g.input.remove(at);
    g.input.splice(0..0, inputs(renderer));
    let ops = match renderer {
        Renderer::Windows => render_ops(card, &card.input_name),
        Renderer::Turns => turn_ops(card, &card.input_name),
    };
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
        // Rotations: no background, a sine and cosine per input instead.
        let turned = pb::ModelProto::decode(prepend_turns(&tiny.bytes, &tiny.card).unwrap().as_slice()).unwrap().graph.unwrap();
        assert_eq!(turned.input.iter().map(|i| i.name()).collect::<Vec<_>>(), vec![PIXELS, VIEWS, TURNS]);
        assert_eq!(turned.node.iter().filter(|n| n.output.contains(&tiny.card.input_name)).count(), 1);
        assert!(prepend(&prepend_turns(&tiny.bytes, &tiny.card).unwrap(), &tiny.card).is_err(), "one rendering only");
    }
}
