//! Architecture-faithful untrained models: the ONNX package's `light_*` test
//! models (ResNet-50, VGG-19, Inception v1/v2, DenseNet-121, SqueezeNet,
//! ShuffleNet, AlexNet, ZFNet-512) have every weight replaced by
//! `ConstantOfShape(0.02)`, so their outputs are uniform. [`seed`] puts seeded
//! random weights in their place, chosen by how each tensor is consumed: conv and
//! dense weights He-normal by fan-in, biases and BN shifts and means 0, BN scales
//! and variances 1. It also makes the batch dimension symbolic and flattens 4-D
//! outputs, so the models run in batches like any other. Their numbers measure the
//! architecture's sampling behaviour, not a trained classifier: cards say
//! `untrained`. Identity batch-norm statistics let activations of deep networks
//! grow until the softmax saturates, so `jagged models import` then calibrates
//! them: [`batch_stats_model`] gives every node's input statistics in one pass,
//! [`set_initializers`] stores them, and [`instrument`] measures them again.

use crate::graph::SplitMix;
use crate::pb;
use crate::{BuiltModel, OnnxError};
use jagged_domain::spec::{ModelCard, OutputKind};
use jagged_domain::transform::Normalize;
use prost::Message;
use std::collections::HashMap;

const FLOAT: i32 = 1;
const INT64: i32 = 7;

fn bad(m: impl Into<String>) -> OnnxError {
    OnnxError::Weights(m.into())
}

fn int64s(t: &pb::TensorProto) -> Vec<i64> {
    if !t.int64_data.is_empty() {
        return t.int64_data.clone();
    }
    t.raw_data.as_deref().unwrap_or_default().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Standard normal sample (Box-Muller).
fn normal(rng: &mut SplitMix) -> f32 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Seeds a `light_*` model; `name` goes into the card.
pub fn seed(bytes: &[u8], name: &str, seed: u64) -> Result<BuiltModel, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.as_mut().ok_or_else(|| bad("model has no graph"))?;
    let output_is_softmax = graph
        .output
        .first()
        .and_then(|o| graph.node.iter().find(|n| n.output.iter().any(|x| x == o.name())))
        .is_some_and(|n| n.op_type() == "Softmax");
    seed_weights(graph, seed)?;
    if graph.input.len() != 1 {
        return Err(bad(format!("expected one data input, found {}", graph.input.len())));
    }
    symbolic_batch(graph);
    let (input_name, input_dims) = data_input(graph)?;
    let classes = 1000i64;
    flat_output(graph, classes)?;
    // Intermediate shape annotations may pin the batch at 1: drop them.
    graph.value_info.clear();
    // IR 4 lets initializers stand apart from graph inputs.
    model.ir_version = Some(model.ir_version.unwrap_or(3).max(4));
    Ok(BuiltModel {
        bytes: model.encode_to_vec(),
        card: ModelCard {
            name: name.to_string(),
            input_name,
            output_name: "prob".into(),
            input_size: input_dims[2] as u32,
            normalize: Normalize { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
            num_classes: classes as u32,
            output: if output_is_softmax { OutputKind::Probabilities } else { OutputKind::Logits },
            classes: vec![],
            wnids: vec![],
            untrained: true,
            source: format!("onnx package test model `{name}` with seeded random weights (seed {seed})"),
            license: "Apache-2.0".into(),
            antialiased: None,
        },
    })
}

/// How each tensor is consumed: (op, input position), looking through ops
/// that only reshape (a weight may be reshaped before its Gemm).
fn roles(graph: &pb::GraphProto) -> impl Fn(&str) -> (String, usize) + '_ {
    let mut direct: HashMap<String, (String, usize, String)> = HashMap::new();
    for n in &graph.node {
        for (i, inp) in n.input.iter().enumerate() {
            let out = n.output.first().cloned().unwrap_or_default();
            direct.entry(inp.clone()).or_insert((n.op_type().to_string(), i, out));
        }
    }
    move |name: &str| {
        let mut cur = name.to_string();
        for _ in 0..8 {
            match direct.get(&cur) {
                Some((op, 0, out)) if matches!(op.as_str(), "Reshape" | "Transpose" | "Unsqueeze" | "Squeeze" | "Identity" | "Flatten") => {
                    cur = out.clone()
                }
                Some((op, i, _)) => return (op.clone(), *i),
                None => break,
            }
        }
        (String::new(), 0)
    }
}

/// Replaces each `ConstantOfShape` weight with seeded values by what consumes
/// it (He-normal convolution and dense weights, unit scales, zero biases and
/// shifts), drops the shape constants only those nodes used, and stops
/// listing weights as graph inputs.
fn seed_weights(graph: &mut pb::GraphProto, seed: u64) -> Result<(), OnnxError> {
    let shapes: HashMap<String, Vec<i64>> =
        graph.initializer.iter().filter(|t| t.data_type == Some(INT64)).map(|t| (t.name().to_string(), int64s(t))).collect();
    let mut rng = SplitMix(seed);
    let mut seeded = Vec::new();
    let mut keep = Vec::new();
    {
        let role = roles(graph);
        for n in &graph.node {
            if n.op_type() != "ConstantOfShape" {
                keep.push(n.clone());
                continue;
            }
            let out = n.output.first().cloned().ok_or_else(|| bad("ConstantOfShape without output"))?;
            let dims = n.input.first().and_then(|s| shapes.get(s)).cloned().ok_or_else(|| bad(format!("shape of `{out}` is not constant")))?;
            let count: i64 = dims.iter().product();
            let fan_in: i64 = dims.iter().skip(1).product::<i64>().max(1);
            let role = role(&out);
            let data: Vec<f32> = match (role.0.as_str(), role.1) {
                ("Conv", 1) | ("Gemm", 1) => {
                    let std = (2.0 / fan_in as f32).sqrt();
                    (0..count).map(|_| normal(&mut rng) * std).collect()
                }
                ("BatchNormalization", 1) | ("BatchNormalization", 4) | ("Mul", _) => vec![1.0; count as usize],
                _ => vec![0.0; count as usize],
            };
            seeded.push(pb::TensorProto { name: Some(out), dims, data_type: Some(FLOAT), float_data: data, ..Default::default() });
        }
    }
    graph.node = keep;
    // The shape constants fed only the removed nodes.
    let mut weight_names: std::collections::HashSet<String> = graph.initializer.iter().map(|t| t.name().to_string()).collect();
    let consumed: std::collections::HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    graph.initializer.retain(|t| consumed.contains(t.name()));
    let seeded_names: std::collections::HashSet<String> = seeded.iter().map(|t| t.name().to_string()).collect();
    graph.initializer.extend(seeded);
    // Weights listed as graph inputs (old-style graphs) stop being inputs.
    weight_names.extend(seeded_names);
    graph.input.retain(|i| !weight_names.contains(i.name()));
    Ok(())
}

/// A symbolic batch: the data input's first dimension, and reshapes that
/// fixed it at 1.
fn symbolic_batch(graph: &mut pb::GraphProto) {
    if let Some(pb::type_proto::Value::TensorType(t)) = graph.input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if let Some(d) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
            d.value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("N".into()));
        }
    }
    let reshape_shapes: std::collections::HashSet<String> =
        graph.node.iter().filter(|n| n.op_type() == "Reshape").filter_map(|n| n.input.get(1).cloned()).collect();
    for t in graph.initializer.iter_mut().filter(|t| reshape_shapes.contains(t.name())) {
        let mut v = int64s(t);
        if v.first() == Some(&1) {
            v[0] = 0;
            t.int64_data = v;
            t.raw_data = None;
        }
    }
}

/// The data input's name and dimensions, which must be `[N, 3, S, S]`.
fn data_input(graph: &pb::GraphProto) -> Result<(String, Vec<i64>), OnnxError> {
    let input_name = graph.input[0].name().to_string();
    let input_dims: Vec<i64> = match graph.input[0].r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                        _ => -1,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![],
    };
    if input_dims.len() != 4 || input_dims[1] != 3 || input_dims[2] != input_dims[3] {
        return Err(bad(format!("data input `{input_name}` has shape {input_dims:?}, expected [N, 3, S, S]")));
    }
    Ok((input_name, input_dims))
}

/// One flat `[N, classes]` output named `prob`, after the model's own.
fn flat_output(graph: &mut pb::GraphProto, classes: i64) -> Result<(), OnnxError> {
    let out = graph.output.first().cloned().ok_or_else(|| bad("model has no output"))?;
    graph.node.push(pb::NodeProto {
        op_type: Some("Flatten".into()),
        input: vec![out.name().to_string()],
        output: vec!["prob".into()],
        name: Some("jagged_flatten".into()),
        attribute: vec![pb::AttributeProto {
            name: Some("axis".into()),
            i: Some(1),
            r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut new_out = out.clone();
    new_out.name = Some("prob".into());
    if let Some(pb::type_proto::Value::TensorType(t)) = new_out.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = Some(pb::TensorShapeProto {
            dim: vec![
                pb::tensor_shape_proto::Dimension {
                    value: Some(pb::tensor_shape_proto::dimension::Value::DimParam("N".into())),
                    ..Default::default()
                },
                pb::tensor_shape_proto::Dimension { value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(classes)), ..Default::default() },
            ],
        });
    }
    graph.output = vec![new_out];
    Ok(())
}

/// One BatchNormalization node to calibrate: its running-statistics initializers
/// and the instrumented outputs that measure its input.
#[derive(Clone, Debug, PartialEq)]
pub struct BnLayer {
    /// Initializer holding the running mean.
    pub mean_init: String,
    /// Initializer holding the running variance.
    pub var_init: String,
    /// Output: per-channel mean of the node's input over (N, H, W).
    pub mean_out: String,
    /// Output: per-channel mean of the squared input over (N, H, W).
    pub sq_out: String,
}

/// A copy of a model that also outputs, for every BatchNormalization node, the
/// per-channel mean and mean square of its input, and the list of those nodes.
pub struct Instrumented {
    /// The instrumented model.
    pub bytes: Vec<u8>,
    /// The nodes, in graph order.
    pub layers: Vec<BnLayer>,
}

fn attr_ints(name: &str, v: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), ints: v, r#type: Some(pb::attribute_proto::AttributeType::Ints as i32), ..Default::default() }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), i: Some(v), r#type: Some(pb::attribute_proto::AttributeType::Int as i32), ..Default::default() }
}

/// Adds the measuring outputs (`ReduceMean` over axes 0, 2, 3 of each BN input and
/// of its square; opsets before 18 take the axes as an attribute).
pub fn instrument(bytes: &[u8]) -> Result<Instrumented, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.as_mut().ok_or_else(|| bad("model has no graph"))?;
    let mut layers = Vec::new();
    let mut extra = Vec::new();
    for (i, n) in graph.node.iter().enumerate().filter(|(_, n)| n.op_type() == "BatchNormalization") {
        let (Some(x), Some(mean), Some(var)) = (n.input.first(), n.input.get(3), n.input.get(4)) else {
            return Err(bad(format!("BatchNormalization node {i} lacks inputs")));
        };
        let l = BnLayer {
            mean_init: mean.clone(),
            var_init: var.clone(),
            mean_out: format!("jagged_cal_{i}_mean"),
            sq_out: format!("jagged_cal_{i}_sq"),
        };
        let sq = format!("jagged_cal_{i}_x2");
        let node = |op: &str, inputs: Vec<String>, out: &str, attrs: Vec<pb::AttributeProto>| pb::NodeProto {
            op_type: Some(op.into()),
            input: inputs,
            output: vec![out.to_string()],
            name: Some(format!("{out}_node")),
            attribute: attrs,
            ..Default::default()
        };
        let reduce = || vec![attr_ints("axes", vec![0, 2, 3]), attr_int("keepdims", 0)];
        extra.push(node("Mul", vec![x.clone(), x.clone()], &sq, vec![]));
        extra.push(node("ReduceMean", vec![x.clone()], &l.mean_out, reduce()));
        extra.push(node("ReduceMean", vec![sq], &l.sq_out, reduce()));
        layers.push(l);
    }
    let mut seen = std::collections::HashSet::new();
    if layers.iter().any(|l| !seen.insert(l.mean_init.clone()) || !seen.insert(l.var_init.clone())) {
        return Err(bad("BatchNormalization nodes share running statistics"));
    }
    graph.node.extend(extra);
    add_stat_outputs(graph, &layers);
    Ok(Instrumented { bytes: model.encode_to_vec(), layers })
}

/// Adds each layer's two statistics as float graph outputs (shape left open).
fn add_stat_outputs(graph: &mut pb::GraphProto, layers: &[BnLayer]) {
    for name in layers.iter().flat_map(|l| [&l.mean_out, &l.sq_out]) {
        graph.output.push(pb::ValueInfoProto {
            name: Some(name.clone()),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: Some(FLOAT), shape: None })),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
}

/// Replaces float initializers by name (each given as its new values, same length).
pub fn set_initializers(bytes: &[u8], values: &HashMap<String, Vec<f32>>) -> Result<Vec<u8>, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.as_mut().ok_or_else(|| bad("model has no graph"))?;
    let mut done = 0;
    for t in graph.initializer.iter_mut() {
        if let Some(v) = values.get(t.name()) {
            let n: i64 = t.dims.iter().product();
            if n as usize != v.len() || t.data_type != Some(FLOAT) {
                return Err(bad(format!("initializer `{}` holds {n} values, not {}", t.name(), v.len())));
            }
            t.float_data = v.clone();
            t.raw_data = None;
            done += 1;
        }
    }
    if done != values.len() {
        return Err(bad(format!("{} of {} initializers to set were not found", values.len() - done, values.len())));
    }
    Ok(model.encode_to_vec())
}

/// A copy of a model in which every BatchNormalization node normalises by the
/// statistics of the batch it is given instead of its running ones, and which
/// also outputs those statistics per node (`[1, C, 1, 1]` mean and variance over
/// N, H, W, in the order of [`Instrumented::layers`]: `mean_out` is the mean,
/// `sq_out` the variance). One forward pass thus gives, layer after layer, the
/// statistics each node sees when every node before it normalises its input:
/// the data-dependent initialisation of batch norm, exactly, in one pass. Built
/// from ops whose form is the same from opset 7 to 17 (ReduceMean takes its axes
/// as an attribute there; from 18 as an input).
pub fn batch_stats_model(bytes: &[u8]) -> Result<Instrumented, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model: {e}")))?;
    let opset = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap_or(1);
    if !(7..=17).contains(&opset) {
        return Err(bad(format!("batch-norm calibration supports opsets 7 to 17; the model has {opset}")));
    }
    let graph = model.graph.as_mut().ok_or_else(|| bad("model has no graph"))?;
    let mut layers = Vec::new();
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    for (i, n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        if n.op_type() != "BatchNormalization" {
            nodes.push(n);
            continue;
        }
        let (Some(x), Some(scale), Some(shift), Some(mean), Some(var), Some(y)) =
            (n.input.first(), n.input.get(1), n.input.get(2), n.input.get(3), n.input.get(4), n.output.first())
        else {
            return Err(bad(format!("BatchNormalization node {i} lacks inputs or outputs")));
        };
        let eps = n.attribute.iter().find(|a| a.name() == "epsilon").and_then(|a| a.f).unwrap_or(1e-5);
        let p = |s: &str| format!("jagged_bs_{i}_{s}");
        let l = BnLayer { mean_init: mean.clone(), var_init: var.clone(), mean_out: p("mean"), sq_out: p("var") };
        inits.push(pb::TensorProto { name: Some(p("eps")), dims: vec![], data_type: Some(FLOAT), float_data: vec![eps], ..Default::default() });
        inits.push(pb::TensorProto {
            name: Some(p("shape")),
            dims: vec![4],
            data_type: Some(INT64),
            int64_data: vec![1, -1, 1, 1],
            ..Default::default()
        });
        let node = |op: &str, inputs: &[&str], out: &str, attrs: Vec<pb::AttributeProto>| pb::NodeProto {
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: Some(format!("{out}_node")),
            attribute: attrs,
            ..Default::default()
        };
        let reduce = || vec![attr_ints("axes", vec![0, 2, 3]), attr_int("keepdims", 1)];
        nodes.push(node("ReduceMean", &[x], &l.mean_out, reduce()));
        nodes.push(node("Sub", &[x, &l.mean_out], &p("d"), vec![]));
        nodes.push(node("Mul", &[&p("d"), &p("d")], &p("d2"), vec![]));
        nodes.push(node("ReduceMean", &[&p("d2")], &l.sq_out, reduce()));
        nodes.push(node("Add", &[&l.sq_out, &p("eps")], &p("ve"), vec![]));
        nodes.push(node("Sqrt", &[&p("ve")], &p("sd"), vec![]));
        nodes.push(node("Div", &[&p("d"), &p("sd")], &p("n"), vec![]));
        nodes.push(node("Reshape", &[scale, &p("shape")], &p("g"), vec![]));
        nodes.push(node("Reshape", &[shift, &p("shape")], &p("b"), vec![]));
        nodes.push(node("Mul", &[&p("n"), &p("g")], &p("ng"), vec![]));
        nodes.push(node("Add", &[&p("ng"), &p("b")], y, vec![]));
        layers.push(l);
    }
    graph.node = nodes;
    graph.initializer.extend(inits);
    add_stat_outputs(graph, &layers);
    Ok(Instrumented { bytes: model.encode_to_vec(), layers })
}
