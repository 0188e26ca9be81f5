//! Where a network subsamples: every operation with a spatial stride above one
//! along the graph, the cumulative subsampling factor at its output (the product
//! of strides along the most subsampled path from the input), and whether a
//! low-pass filter comes first — Azulay & Weiss's sampling-theorem argument reads
//! jaggedness against exactly these two numbers.
//!
//! A subsampling op counts as blurred when it is itself a low-pass filter (an
//! average pool, or a depthwise convolution whose kernels are non-negative and sum
//! to one, like antialiased-cnns' BlurPool), or when its input comes from one
//! (stride 1) through element-wise ops only.

use crate::pb;
use crate::OnnxError;
use prost::Message;
use serde::Serialize;
use std::collections::HashMap;

/// One subsampling operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subsampling {
    /// Node name (or its output's name when unnamed).
    pub node: String,
    /// Operator type.
    pub op: String,
    /// Kernel size (first spatial axis).
    pub kernel: i64,
    /// Stride (first spatial axis).
    pub stride: i64,
    /// Cumulative subsampling factor at the op's output.
    pub cumulative: i64,
    /// Whether a low-pass filter precedes (or is) the subsampling.
    pub blurred: bool,
}

/// A tensor's name and shape (negative: symbolic).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Port {
    /// Name.
    pub name: String,
    /// Dimensions; -1 where symbolic.
    pub shape: Vec<i64>,
}

/// What `jagged inspect` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    /// Graph inputs that are not weights.
    pub inputs: Vec<Port>,
    /// Graph outputs.
    pub outputs: Vec<Port>,
    /// Operator count.
    pub nodes: usize,
    /// Subsampling operations in graph order.
    pub subsampling: Vec<Subsampling>,
    /// The largest cumulative factor (1 when nothing subsamples).
    pub factor: i64,
    /// Whether every subsampling op is blurred.
    pub all_blurred: bool,
}

fn port(v: &pb::ValueInfoProto) -> Port {
    let shape = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
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
    Port { name: v.name().to_string(), shape }
}

fn ints(n: &pb::NodeProto, name: &str) -> Vec<i64> {
    n.attribute.iter().find(|a| a.name() == name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn int(n: &pb::NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name() == name).and_then(|a| a.i)
}

fn floats(t: &pb::TensorProto) -> Vec<f32> {
    if !t.float_data.is_empty() {
        return t.float_data.clone();
    }
    t.raw_data.as_deref().unwrap_or_default().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Element-wise ops a blur may pass through on its way to a subsampling op.
const ELEMENTWISE: [&str; 8] = ["Relu", "Clip", "BatchNormalization", "Identity", "LeakyRelu", "Sigmoid", "Mul", "Pad"];

/// Whether `node` is a low-pass filter: an average pool, or a depthwise conv with
/// non-negative kernels that each sum to one.
fn is_lowpass(node: &pb::NodeProto, weights: &HashMap<&str, &pb::TensorProto>) -> bool {
    match node.op_type() {
        "AveragePool" => true,
        "Conv" => {
            let Some(w) = node.input.get(1).and_then(|n| weights.get(n.as_str())) else { return false };
            if w.dims.len() != 4 || w.dims[1] != 1 || int(node, "group").unwrap_or(1) != w.dims[0] || w.dims[2] * w.dims[3] < 2 {
                return false;
            }
            let data = floats(w);
            let per = (w.dims[2] * w.dims[3]) as usize;
            !data.is_empty() && data.chunks(per).all(|k| k.iter().all(|&v| v >= 0.0) && (k.iter().sum::<f32>() - 1.0).abs() < 1e-3)
        }
        _ => false,
    }
}

impl Inspection {
    /// The summary stored with a model at submit.
    pub fn structure(&self) -> jagged_domain::spec::Structure {
        jagged_domain::spec::Structure {
            factor: self.factor,
            subsampling_ops: self.subsampling.len() as u32,
            blurred_ops: self.subsampling.iter().filter(|s| s.blurred).count() as u32,
        }
    }
}

/// Analyses an ONNX model's bytes.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, OnnxError> {
    let model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let g = model.graph.as_ref().ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let weights: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name(), t)).collect();
    let producer: HashMap<&str, &pb::NodeProto> = g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let inputs: Vec<Port> = g.input.iter().filter(|i| !weights.contains_key(i.name())).map(port).collect();
    let mut factor: HashMap<&str, i64> = inputs.iter().map(|p| (p.name.as_str(), 1)).collect();
    for i in &g.input {
        factor.entry(i.name()).or_insert(1);
    }
    let mut subs = Vec::new();
    // Nodes are topologically sorted in valid ONNX graphs.
    for n in &g.node {
        let in_factor =
            n.input.iter().filter(|i| !weights.contains_key(i.as_str())).filter_map(|i| factor.get(i.as_str())).copied().max().unwrap_or(1);
        let strided = matches!(n.op_type(), "Conv" | "MaxPool" | "AveragePool" | "LpPool" | "ConvTranspose");
        let stride = if strided && n.op_type() != "ConvTranspose" { ints(n, "strides").first().copied().unwrap_or(1).max(1) } else { 1 };
        let out_factor = in_factor * stride;
        for o in &n.output {
            factor.insert(o.as_str(), out_factor);
        }
        if stride > 1 {
            let kernel = ints(n, "kernel_shape")
                .first()
                .copied()
                .or_else(|| n.input.get(1).and_then(|w| weights.get(w.as_str())).and_then(|w| w.dims.get(2).copied()));
            let mut blurred = is_lowpass(n, &weights);
            // Walk back through element-wise ops to the data producer.
            let mut cur = n.input.first().map(String::as_str);
            for _ in 0..16 {
                if blurred {
                    break;
                }
                let Some(p) = cur.and_then(|c| producer.get(c)) else { break };
                if is_lowpass(p, &weights) && ints(p, "strides").iter().all(|&s| s == 1) {
                    blurred = true;
                } else if ELEMENTWISE.contains(&p.op_type()) {
                    cur = p.input.first().map(String::as_str);
                } else {
                    break;
                }
            }
            let name = if n.name().is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name().to_string() };
            subs.push(Subsampling { node: name, op: n.op_type().to_string(), kernel: kernel.unwrap_or(1), stride, cumulative: out_factor, blurred });
        }
    }
    let total = subs.iter().map(|s| s.cumulative).max().unwrap_or(1);
    Ok(Inspection {
        inputs,
        outputs: g.output.iter().map(port).collect(),
        nodes: g.node.len(),
        all_blurred: subs.iter().all(|s| s.blurred),
        factor: total,
        subsampling: subs,
    })
}

/// Whether `n` pools over the spatial axes (its output holds pooled features).
fn pools_globally(n: &pb::NodeProto) -> bool {
    match n.op_type() {
        "GlobalAveragePool" | "GlobalMaxPool" => true,
        "ReduceMean" | "ReduceMax" => {
            let axes = ints(n, "axes");
            [2, 3].iter().all(|a| axes.contains(a)) || [-2, -1].iter().all(|a| axes.contains(a))
        }
        _ => false,
    }
}

/// Zero padding an op adds at each border, in its input's cells.
fn padding(n: &pb::NodeProto, weights: &HashMap<&str, &pb::TensorProto>) -> i64 {
    if n.op_type() == "Pad" {
        // Opset 11 on: the pads are the second input (a constant); before, an attribute.
        let from_input = n.input.get(1).and_then(|p| weights.get(p.as_str())).map(|t| {
            if !t.int64_data.is_empty() {
                t.int64_data.clone()
            } else {
                t.raw_data.as_deref().unwrap_or_default().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            }
        });
        return from_input.unwrap_or_else(|| ints(n, "pads")).into_iter().max().unwrap_or(0).max(0);
    }
    if !matches!(n.op_type(), "Conv" | "MaxPool" | "AveragePool" | "LpPool") {
        return 0;
    }
    let explicit = ints(n, "pads").into_iter().max().unwrap_or(0);
    let auto = n.attribute.iter().find(|a| a.name() == "auto_pad").and_then(|a| a.s.as_deref()).unwrap_or_default();
    if auto.starts_with(b"SAME") {
        let kernel = ints(n, "kernel_shape")
            .first()
            .copied()
            .or_else(|| n.input.get(1).and_then(|w| weights.get(w.as_str())).and_then(|w| w.dims.get(2).copied()))
            .unwrap_or(1);
        return explicit.max(kernel / 2);
    }
    explicit
}

/// The tensors a per-layer equivariance sweep measures, in graph order: the
/// data input and the output of every subsampling op (the map before and after
/// it subsamples) and the output of every global pooling, each with its
/// cumulative factor and how far zero padding has reached into it.
pub fn probes(bytes: &[u8]) -> Result<Vec<jagged_domain::metrics::equivariance::Probe>, OnnxError> {
    use jagged_domain::metrics::equivariance::Probe;
    let found = inspect(bytes)?;
    let model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let g = model.graph.as_ref().ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let weights: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name(), t)).collect();
    let producer: HashMap<&str, &pb::NodeProto> = g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let name_of = |n: &pb::NodeProto| if n.name().is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name().to_string() };
    // (factor, reach) of every tensor, graph inputs at (1, 0).
    let mut at: HashMap<&str, (i64, i64)> = g.input.iter().map(|i| (i.name(), (1, 0))).collect();
    let mut out: Vec<Probe> = Vec::new();
    let mut push = |p: Probe| {
        if !out.iter().any(|q| q.tensor == p.tensor) {
            out.push(p);
        }
    };
    for n in &g.node {
        let data: Vec<&str> = n.input.iter().map(String::as_str).filter(|i| !i.is_empty() && !weights.contains_key(i)).collect();
        let (in_factor, in_reach) = data.iter().filter_map(|i| at.get(i)).fold((1, 0), |(f, r), &(f2, r2)| (f.max(f2), r.max(r2)));
        let strided = matches!(n.op_type(), "Conv" | "MaxPool" | "AveragePool" | "LpPool");
        let stride = if strided { ints(n, "strides").first().copied().unwrap_or(1).max(1) } else { 1 };
        let reach = in_reach + padding(n, &weights) * in_factor;
        let factor = in_factor * stride;
        for o in &n.output {
            at.insert(o.as_str(), (factor, reach));
        }
        let Some(output) = n.output.first() else { continue };
        if stride > 1 {
            // The map before subsampling: the op's data input, looking through the
            // padding a rewrite may have put in front of it.
            let mut t = data.first().copied();
            while let Some(p) = t.and_then(|i| producer.get(i)).filter(|p| matches!(p.op_type(), "Pad" | "Identity")) {
                t = p.input.first().map(String::as_str);
            }
            if let Some((t, p)) = t.and_then(|t| producer.get(t).map(|p| (t, p))) {
                push(Probe {
                    tensor: t.to_string(),
                    node: name_of(p),
                    op: p.op_type().to_string(),
                    factor: in_factor as u32,
                    blurred: false,
                    reach: at.get(t).map_or(0, |a| a.1) as u32,
                });
            }
            let name = name_of(n);
            let blurred = found.subsampling.iter().any(|s| s.node == name && s.blurred);
            push(Probe { tensor: output.clone(), node: name, op: n.op_type().to_string(), factor: factor as u32, blurred, reach: reach as u32 });
        } else if pools_globally(n) {
            push(Probe { tensor: output.clone(), node: name_of(n), op: n.op_type().to_string(), factor: 0, blurred: false, reach: reach as u32 });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Attr, Graph};

    #[test]
    fn tiny_cnn_subsamples_by_four_without_blur() {
        let m = crate::tiny::build(&crate::tiny::TinySpec::default());
        let i = inspect(&m.bytes).unwrap();
        assert_eq!(i.factor, 4);
        assert_eq!(i.subsampling.iter().map(|s| (s.stride, s.cumulative, s.blurred)).collect::<Vec<_>>(), vec![(2, 2, false), (2, 4, false)]);
        assert_eq!(i.inputs[0].shape, vec![-1, 3, 32, 32]);
        assert!(!i.all_blurred);
        // Probes: the first conv's output (it subsamples the input itself), the
        // second conv's input (after the ReLU) and its output; padding 1 at factor
        // 1, then 1 more at factor 2.
        let p = probes(&m.bytes).unwrap();
        let got: Vec<(&str, &str, u32, u32)> = p.iter().map(|p| (p.tensor.as_str(), p.op.as_str(), p.factor, p.reach)).collect();
        assert_eq!(got, vec![("conv_1", "Conv", 2, 1), ("relu_2", "Relu", 2, 1), ("conv_3", "Conv", 4, 3)]);
    }

    /// A BlurPool-style block: max pool stride 1, then a depthwise binomial
    /// [1,2,1]x[1,2,1]/16 conv with stride 2; a plain strided conv after it.
    #[test]
    fn blurpool_counts_as_blurred_and_plain_strides_do_not() {
        let mut g = Graph::default();
        let k1 = [1.0f32, 2.0, 1.0];
        let kernel: Vec<f32> = (0..3).flat_map(|_| k1.iter().flat_map(|a| k1.iter().map(move |b| a * b / 16.0))).collect();
        let blur = g.init("blur", &[3, 1, 3, 3], kernel);
        let w = g.init("w", &[4, 3, 3, 3], vec![0.1; 108]);
        let mp = g.node("MaxPool", &["input"], vec![("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![1, 1]))]);
        let b =
            g.node("Conv", &[&mp, &blur], vec![("group", Attr::Int(3)), ("strides", Attr::Ints(vec![2, 2])), ("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
        let c = g.node("Conv", &[&b, &w], vec![("strides", Attr::Ints(vec![2, 2])), ("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
        let gp = g.node("GlobalAveragePool", &[&c], vec![]);
        let f = g.node("Flatten", &[&gp], vec![]);
        let bytes = g.finish("input", 16, &f, "out", 4);
        let i = inspect(&bytes).unwrap();
        assert_eq!(
            i.subsampling.iter().map(|s| (s.op.as_str(), s.cumulative, s.blurred)).collect::<Vec<_>>(),
            vec![("Conv", 2, true), ("Conv", 4, false)]
        );
        assert_eq!(i.factor, 4);
        let p = probes(&bytes).unwrap();
        let got: Vec<(&str, u32, bool)> = p.iter().map(|p| (p.op.as_str(), p.factor, p.blurred)).collect();
        assert_eq!(got, vec![("MaxPool", 1, false), ("Conv", 2, true), ("Conv", 4, false), ("GlobalAveragePool", 0, false)], "{p:?}");
    }
}
