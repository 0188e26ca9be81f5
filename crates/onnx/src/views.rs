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
//! rounding. A sub-pixel crop grid's inputs are resampled windows:
//! [`prepend_shifts`] takes each input's first source column and row in its
//! view and its Kaiser-windowed sinc weights in [`TAPS_INPUT`], and computes
//! the host's two passes as products with banded matrices in `f64`.

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
/// Name of the taps input (sub-pixel windows: the weights per input).
pub const TAPS_INPUT: &str = "jagged_taps";
/// Columns of one input's taps in [`TAPS_INPUT`]: per axis, the weights and a zero.
pub const TAP_COLUMNS: usize = 2 * (jagged_domain::transform::TAPS + 1);
/// Columns of one view in [`VIEWS`].
pub const VIEW_COLUMNS: usize = 5;

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;
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

/// The sub-pixel windows' ops, ending in a float `[N, 3, side, side]` tensor
/// named `out`: per input, the `(side + 15)`-square patch of its image from its
/// first column and row on (edge repeated), in `f64`, times a banded matrix of
/// its x weights, then a banded matrix of its y weights times that (the host's
/// two passes, as matrix products), then `f32` and normalised.
fn shift_ops(card: &ModelCard, out: &str) -> Ops {
    let side = card.input_size as i64;
    let taps = jagged_domain::transform::TAPS as i64;
    let reach = side + taps - 1;
    let mut g = Ops { nodes: Vec::new(), inits: Vec::new() };
    let table = g.op("Cast", &[PIXELS], "pixels_f64", vec![int_attr("to", DOUBLE as i64)]);
    let (start, w, h) = (g.column(VIEWS, 0, "start"), g.column(VIEWS, 1, "width"), g.column(VIEWS, 2, "height"));
    let (fx, fy) = (g.column(VIEWS, 3, "first_x"), g.column(VIEWS, 4, "first_y"));
    let (zero, one) = (g.ints("zero", &[1], vec![0]), g.ints("one", &[1], vec![1]));
    // Source rows [N, reach, 1] and columns [N, 1, reach], clamped to the image.
    let clamp = |g: &mut Ops, first: &str, size: &str, dims: &[i64], what: &str| {
        let steps = g.ints(&format!("{what}_steps"), dims, (0..reach).collect());
        let at = g.op("Add", &[first, &steps], &format!("{what}_at"), vec![]);
        let last = g.op("Sub", &[size, &one], &format!("{what}_last"), vec![]);
        let below = g.op("Less", &[&at, &zero], &format!("{what}_below"), vec![]);
        let at = g.op("Where", &[&below, &zero, &at], &format!("{what}_from_0"), vec![]);
        let beyond = g.op("Greater", &[&at, &last], &format!("{what}_beyond"), vec![]);
        g.op("Where", &[&beyond, &last, &at], what, vec![])
    };
    let ys = clamp(&mut g, &fy, &h, &[1, reach, 1], "ys");
    let xs = clamp(&mut g, &fx, &w, &[1, 1, reach], "xs");
    let row = g.op("Mul", &[&ys, &w], "row", vec![]);
    let at_row = g.op("Add", &[&start, &row], "at_row", vec![]);
    let at = g.op("Add", &[&at_row, &xs], "at", vec![]);
    let patch = g.op("Gather", &[&table, &at], "patch_nhwc", vec![int_attr("axis", 0)]);
    let patch = g.op("Transpose", &[&patch], "patch", vec![ints_attr("perm", vec![0, 3, 1, 2])]);
    // Banded matrices: entry (i, j) is weight i - j (x) or j - i (y) where that
    // lies in 0..taps, else the zero appended at index `taps`.
    let band = |i: i64, j: i64| if (0..taps).contains(&(i - j)) { i - j } else { taps };
    let bx = g.ints("band_x", &[reach, side], (0..reach).flat_map(|q| (0..side).map(move |x| band(q, x))).collect());
    let by = g.ints("band_y", &[side, reach], (0..side).flat_map(|y| (0..reach).map(move |r| band(r, y))).collect());
    let wx_cols = g.ints("wx_columns", &[taps + 1], (0..=taps).collect());
    let wy_cols = g.ints("wy_columns", &[taps + 1], (taps + 1..2 * (taps + 1)).collect());
    let wx = g.op("Gather", &[TAPS_INPUT, &wx_cols], "wx", vec![int_attr("axis", 1)]);
    let wy = g.op("Gather", &[TAPS_INPUT, &wy_cols], "wy", vec![int_attr("axis", 1)]);
    let mx = g.op("Gather", &[&wx, &bx], "mx_3d", vec![int_attr("axis", 1)]);
    let my = g.op("Gather", &[&wy, &by], "my_3d", vec![int_attr("axis", 1)]);
    let shape_x = g.ints("mx_shape", &[4], vec![0, 1, reach, side]);
    let shape_y = g.ints("my_shape", &[4], vec![0, 1, side, reach]);
    let mx = g.op("Reshape", &[&mx, &shape_x], "mx", vec![]);
    let my = g.op("Reshape", &[&my, &shape_y], "my", vec![]);
    let across = g.op("MatMul", &[&patch, &mx], "across", vec![]);
    let down = g.op("MatMul", &[&my, &across], "down", vec![]);
    let sampled = g.op("Cast", &[&down], "sampled", vec![int_attr("to", FLOAT as i64)]);
    let mean = g.floats("mean", &[1, 3, 1, 1], card.normalize.mean.to_vec());
    let scale = g.floats("scale", &[1, 3, 1, 1], card.normalize.std.iter().map(|s| 1.0 / s).collect());
    let centred = g.op("Sub", &[&sampled, &mean], "centred", vec![]);
    g.node("Mul", &[&centred, &scale], out, vec![]);
    g
}

/// What a rendering graph computes from its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Renderer {
    /// Plain windows ([`prepend`]).
    Windows,
    /// Turns ([`prepend_turns`]).
    Turns,
    /// Sub-pixel windows ([`prepend_shifts`]).
    Shifts,
}

fn inputs(renderer: Renderer) -> Vec<pb::ValueInfoProto> {
    let mut v = vec![
        value(PIXELS, UINT8, &[Err("P"), Ok(3)]),
        value(VIEWS, INT64, &[Err("N"), Ok(VIEW_COLUMNS as i64)]),
        value(BACKGROUND, FLOAT, &[Ok(1), Ok(3)]),
    ];
    match renderer {
        Renderer::Windows => {}
        // Black before normalising: no background input.
        Renderer::Turns => {
            v.pop();
            v.push(value(TURNS, FLOAT, &[Err("N"), Ok(2)]));
        }
        // The edge repeats: no background input.
        Renderer::Shifts => {
            v.pop();
            v.push(value(TAPS_INPUT, DOUBLE, &[Err("N"), Ok(TAP_COLUMNS as i64)]));
        }
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

/// The model with the sub-pixel windows' rendering in front: its image input
/// replaced by [`PIXELS`], [`VIEWS`] (start, width, height, first column, first
/// row) and [`TAPS_INPUT`] (each input's x weights, a zero, its y weights, a
/// zero).
pub fn prepend_shifts(bytes: &[u8], card: &ModelCard) -> Result<Vec<u8>, OnnxError> {
    prepend_as(bytes, card, Renderer::Shifts)
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
    let taken = |n: &str| n.starts_with("jagged_views/") || [PIXELS, VIEWS, BACKGROUND, TURNS, TAPS_INPUT].contains(&n);
    if g.node.iter().flat_map(|n| n.output.iter()).chain(g.initializer.iter().filter_map(|t| t.name.as_ref())).any(|n| taken(n)) {
        return Err(OnnxError::Graph("the graph already uses the rendering's tensor names".into()));
    }
    g.input.remove(at);
    g.input.splice(0..0, inputs(renderer));
    let ops = match renderer {
        Renderer::Windows => render_ops(card, &card.input_name),
        Renderer::Turns => turn_ops(card, &card.input_name),
        Renderer::Shifts => shift_ops(card, &card.input_name),
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
