//! Architecture-faithful untrained models: the ONNX package's `light_*` test
//! models (ResNet-50, VGG-19, Inception v1/v2, DenseNet-121, SqueezeNet,
//! ShuffleNet, AlexNet, ZFNet-512) have every weight replaced by
//! `ConstantOfShape(0.02)`, so their outputs are uniform. [`seed`] puts seeded
//! random weights in their place, chosen by how each tensor is consumed: conv and
//! dense weights He-normal by fan-in, biases and BN shifts and means 0, BN scales
//! and variances 1. It also makes the batch dimension symbolic and flattens 4-D
//! outputs, so the models run in batches like any other. Their numbers measure the
//! architecture's sampling behaviour, not a trained classifier: cards say
//! `untrained`.

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
    let shapes: HashMap<String, Vec<i64>> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(INT64))
        .map(|t| (t.name().to_string(), int64s(t)))
        .collect();
    // How each tensor is consumed: (op, input position), looking through ops
    // that only reshape (a weight may be reshaped before its Gemm).
    let mut direct: HashMap<String, (String, usize, String)> = HashMap::new();
    for n in &graph.node {
        for (i, inp) in n.input.iter().enumerate() {
            let out = n.output.first().cloned().unwrap_or_default();
            direct.entry(inp.clone()).or_insert((n.op_type().to_string(), i, out));
        }
    }
    let role = |name: &str| -> (String, usize) {
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
    };
    let output_is_softmax = graph
        .output
        .first()
        .and_then(|o| graph.node.iter().find(|n| n.output.iter().any(|x| x == o.name())))
        .is_some_and(|n| n.op_type() == "Softmax");
    let mut rng = SplitMix(seed);
    let mut seeded = Vec::new();
    let mut keep = Vec::new();
    for n in std::mem::take(&mut graph.node) {
        if n.op_type() != "ConstantOfShape" {
            keep.push(n);
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
    if graph.input.len() != 1 {
        return Err(bad(format!("expected one data input, found {}", graph.input.len())));
    }
    // Symbolic batch: data input and output dim 0, and reshapes that fixed it at 1.
    let sym = |v: &mut pb::ValueInfoProto| {
        if let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            if let Some(d) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                d.value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("N".into()));
            }
        }
    };
    sym(&mut graph.input[0]);
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
    let input_name = graph.input[0].name().to_string();
    let input_dims: Vec<i64> = match graph.input[0].r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| s.dim.iter().map(|d| match d.value { Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v, _ => -1 }).collect())
            .unwrap_or_default(),
        _ => vec![],
    };
    if input_dims.len() != 4 || input_dims[1] != 3 || input_dims[2] != input_dims[3] {
        return Err(bad(format!("data input `{input_name}` has shape {input_dims:?}, expected [N, 3, S, S]")));
    }
    let out = graph.output.first().cloned().ok_or_else(|| bad("model has no output"))?;
    let out_dims = match out.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.len()).unwrap_or(0),
        _ => 0,
    };
    let classes = 1000i64;
    // One flat [N, classes] output named `prob`.
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
    let _ = out_dims;
    let mut new_out = out.clone();
    new_out.name = Some("prob".into());
    if let Some(pb::type_proto::Value::TensorType(t)) = new_out.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = Some(pb::TensorShapeProto {
            dim: vec![
                pb::tensor_shape_proto::Dimension { value: Some(pb::tensor_shape_proto::dimension::Value::DimParam("N".into())), ..Default::default() },
                pb::tensor_shape_proto::Dimension { value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(classes)), ..Default::default() },
            ],
        });
    }
    graph.output = vec![new_out];
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
        },
    })
}
