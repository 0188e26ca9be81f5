//! Anti-aliasing without retraining: Zhang (2019)'s BlurPool placed into an
//! existing graph.
//!
//! Every subsampling op with stride `s > 1` is split into the op at stride 1
//! and a blur-and-subsample step ("BlurPool"): a reflect pad of `(f - 1) / 2`
//! then a depthwise convolution with the normalised binomial kernel of size `f`
//! (3: `[1, 2, 1]`, 5: `[1, 4, 6, 4, 1]`, 7: `[1, 6, 15, 20, 15, 6, 1]`, outer
//! product) at stride `s`. A max pool becomes max pool at stride 1, then
//! BlurPool (Zhang's MaxBlurPool); a strided convolution becomes the
//! convolution at stride 1, its activation (the chain of element-wise ops that
//! alone consume its output: batch norm, ReLU, clip, ...), then BlurPool
//! (ConvBlurPool). Output sizes and sampling positions are unchanged: with an
//! odd filter and symmetric padding the BlurPool output of the stride-1 map
//! has exactly the original op's size, sampled at the same positions.
//! Average pools already low-pass and are left alone, as are ops whose
//! channel count cannot be read from the graph or that pad by `auto_pad` or
//! round up (`ceil_mode`), which stride 1 would change: the rewrite lists them.

use crate::pb;
use crate::OnnxError;
use prost::Message;
use std::collections::{HashMap, HashSet};

/// Filter sizes the rewrite offers.
pub const FILTERS: [u32; 3] = [3, 5, 7];

/// What a rewrite did.
#[derive(Clone, Debug, Default)]
pub struct Rewrite {
    /// The rewritten model.
    pub bytes: Vec<u8>,
    /// Nodes given a BlurPool: (node, op, stride).
    pub blurred: Vec<(String, String, i64)>,
    /// Subsampling nodes left as they were, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The normalised `f` x `f` binomial kernel.
pub fn binomial(f: u32) -> Vec<f32> {
    let mut row = vec![1.0f64];
    for _ in 1..f {
        let mut next = vec![1.0; row.len() + 1];
        for i in 1..row.len() {
            next[i] = row[i - 1] + row[i];
        }
        row = next;
    }
    let total: f64 = row.iter().sum::<f64>().powi(2);
    row.iter().flat_map(|a| row.iter().map(move |b| (a * b / total) as f32)).collect()
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn ints_attr(name: &str, v: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), ints: v, r#type: Some(pb::attribute_proto::AttributeType::Ints as i32), ..Default::default() }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), i: Some(v), r#type: Some(pb::attribute_proto::AttributeType::Int as i32), ..Default::default() }
}

fn str_attr(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        r#type: Some(pb::attribute_proto::AttributeType::String as i32),
        ..Default::default()
    }
}

/// Ops that keep the channel count of their first input.
const SAME_CHANNELS: [&str; 20] = [
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Softplus",
    "Tanh",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "LpPool",
    "Identity",
    "Dropout",
    "Pad",
    "LRN",
    "Add",
    "Mul",
];

/// Element-wise activations (and batch norm) that belong to a convolution:
/// BlurPool goes after them.
const ACTIVATIONS: [&str; 12] =
    ["Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Tanh", "BatchNormalization", "PRelu"];

/// Rewrites `bytes` with BlurPool of filter size `filter` (3, 5 or 7) at every
/// subsampling op it can.
pub fn antialias(bytes: &[u8], filter: u32) -> Result<Rewrite, OnnxError> {
    if !FILTERS.contains(&filter) {
        return Err(OnnxError::Graph(format!("filter size {filter} is not offered (3, 5 or 7: odd, so sampling positions stay put)")));
    }
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let opset = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap_or(1);
    let mut g = model.graph.take().ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let mut out = Rewrite::default();
    let sites = sites(&g, &mut out);
    for &i in &sites.restride {
        for a in g.node[i].attribute.iter_mut().filter(|a| a.name() == "strides") {
            a.ints = vec![1, 1];
        }
    }
    insert_blurpools(&mut g, sites.after, filter, opset);
    // Intermediate shapes changed (stride-1 maps); they are optional hints.
    g.value_info.clear();
    model.graph = Some(g);
    out.bytes = model.encode_to_vec();
    Ok(out)
}

/// Channel counts of the tensors where the graph says them: its inputs', and
/// what convolutions, channel concatenations and channel-keeping ops give.
fn channels(g: &pb::GraphProto) -> HashMap<String, i64> {
    let weights: HashMap<String, Vec<i64>> = g.initializer.iter().map(|t| (t.name().to_string(), t.dims.clone())).collect();
    let mut channels: HashMap<String, i64> = HashMap::new();
    for i in &g.input {
        if let Some(pb::type_proto::Value::TensorType(t)) = i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            if let Some(Some(pb::tensor_shape_proto::dimension::Value::DimValue(c))) =
                t.shape.as_ref().and_then(|s| s.dim.get(1)).map(|d| d.value.clone())
            {
                channels.insert(i.name().to_string(), c);
            }
        }
    }
    for n in &g.node {
        let c = match n.op_type() {
            "Conv" => n.input.get(1).and_then(|w| weights.get(w)).and_then(|d| d.first().copied()),
            "Concat" if attr(n, "axis").and_then(|a| a.i) == Some(1) => n.input.iter().map(|i| channels.get(i).copied()).sum::<Option<i64>>(),
            op if SAME_CHANNELS.contains(&op) => n.input.first().and_then(|i| channels.get(i)).copied(),
            _ => None,
        };
        if let (Some(c), Some(o)) = (c, n.output.first()) {
            channels.insert(o.clone(), c);
        }
    }
    channels
}

/// Where BlurPool goes: the subsampling ops to run at stride 1, and per node
/// index the BlurPool to insert after it (the tensor to blur, its channels,
/// the stride).
struct Sites {
    restride: Vec<usize>,
    after: HashMap<usize, (String, i64, i64)>,
}

/// Finds every subsampling op BlurPool can follow, recording each (and each
/// skipped, with why) in `out`.
fn sites(g: &pb::GraphProto, out: &mut Rewrite) -> Sites {
    let channels = channels(g);
    let graph_outputs: HashSet<String> = g.output.iter().map(|o| o.name().to_string()).collect();
    let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for inp in &n.input {
            consumers.entry(inp.clone()).or_default().push(i);
        }
    }
    let mut sites = Sites { restride: Vec::new(), after: HashMap::new() };
    for (i, n) in g.node.iter().enumerate() {
        let op = n.op_type();
        let strides = attr(n, "strides").map(|a| a.ints.clone()).unwrap_or_default();
        if !matches!(op, "Conv" | "MaxPool") || strides.iter().all(|&s| s <= 1) {
            continue;
        }
        let name = if n.name().is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name().to_string() };
        let why = if strides.len() != 2 || strides[0] != strides[1] {
            Some("strides differ between axes")
        } else if attr(n, "auto_pad").and_then(|a| a.s.as_deref()).is_some_and(|s| s != b"NOTSET") {
            Some("auto_pad padding depends on the stride")
        } else if attr(n, "ceil_mode").and_then(|a| a.i).unwrap_or(0) != 0 {
            Some("ceil_mode rounds the output size up")
        } else if !n.output.first().is_some_and(|o| channels.contains_key(o)) {
            Some("its channel count cannot be read from the graph")
        } else {
            None
        };
        if let Some(why) = why {
            out.skipped.push((name, why.to_string()));
            continue;
        }
        let c = channels[&n.output[0]];
        // The tensor to blur: the op's output, or the end of its activation chain.
        let (mut end, mut tensor) = (i, n.output[0].clone());
        if op == "Conv" {
            while !graph_outputs.contains(&tensor) {
                match consumers.get(&tensor).map(Vec::as_slice) {
                    Some(&[j]) if ACTIVATIONS.contains(&g.node[j].op_type()) && g.node[j].input.first() == Some(&tensor) => {
                        end = j;
                        tensor = g.node[j].output[0].clone();
                    }
                    _ => break,
                }
            }
        }
        sites.restride.push(i);
        sites.after.insert(end, (tensor, c, strides[0]));
        out.blurred.push((name, op.to_string(), strides[0]));
    }
    sites
}

/// Inserts after each node of `after` a reflect pad and a depthwise
/// convolution with the binomial kernel at the op's stride, which then gives
/// the tensor the node gave.
fn insert_blurpools(g: &mut pb::GraphProto, mut after: HashMap<usize, (String, i64, i64)>, filter: u32, opset: i64) {
    let p = (filter as i64 - 1) / 2;
    let kernel = binomial(filter);
    let old_nodes = std::mem::take(&mut g.node);
    for (i, mut n) in old_nodes.into_iter().enumerate() {
        let Some((tensor, c, s)) = after.remove(&i) else {
            g.node.push(n);
            continue;
        };
        let pre = format!("{tensor}/pre_blur");
        let padded = format!("{tensor}/blur_pad");
        for o in n.output.iter_mut().filter(|o| **o == tensor) {
            *o = pre.clone();
        }
        g.node.push(n);
        let pad = pad_node(g, &tensor, pre, padded.clone(), vec![0, 0, p, p, 0, 0, p, p], opset);
        g.node.push(pad);
        let w = format!("{tensor}/blur_kernel");
        g.initializer.push(pb::TensorProto {
            name: Some(w.clone()),
            dims: vec![c, 1, filter as i64, filter as i64],
            data_type: Some(1),
            float_data: (0..c).flat_map(|_| kernel.iter().copied()).collect(),
            ..Default::default()
        });
        g.node.push(pb::NodeProto {
            op_type: Some("Conv".into()),
            input: vec![padded, w],
            output: vec![tensor.clone()],
            name: Some(format!("{tensor}/blurpool")),
            attribute: vec![ints_attr("kernel_shape", vec![filter as i64, filter as i64]), ints_attr("strides", vec![s, s]), int_attr("group", c)],
            ..Default::default()
        });
    }
}

/// A reflect pad of `pre` into `padded`: its pads an input from opset 11 on
/// (an initializer named after `tensor`), an attribute before.
fn pad_node(g: &mut pb::GraphProto, tensor: &str, pre: String, padded: String, pads: Vec<i64>, opset: i64) -> pb::NodeProto {
    if opset >= 11 {
        let pads_name = format!("{tensor}/blur_pads");
        g.initializer.push(pb::TensorProto {
            name: Some(pads_name.clone()),
            dims: vec![8],
            data_type: Some(7),
            int64_data: pads,
            ..Default::default()
        });
        return pb::NodeProto {
            op_type: Some("Pad".into()),
            input: vec![pre, pads_name],
            output: vec![padded.clone()],
            name: Some(padded),
            attribute: vec![str_attr("mode", "reflect")],
            ..Default::default()
        };
    }
    pb::NodeProto {
        op_type: Some("Pad".into()),
        input: vec![pre],
        output: vec![padded.clone()],
        name: Some(padded),
        attribute: vec![str_attr("mode", "reflect"), ints_attr("pads", pads)],
        ..Default::default()
    }
}

/// Adds graph outputs for the named intermediate tensors (float, shape left to
/// the runtime), so one run returns them with the model's own output.
pub fn expose(bytes: &[u8], tensors: &[String]) -> Result<Vec<u8>, OnnxError> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let g = model.graph.as_mut().ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let known: HashSet<&str> = g.node.iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
    if let Some(t) = tensors.iter().find(|t| !known.contains(t.as_str())) {
        return Err(OnnxError::Graph(format!("no node produces `{t}`")));
    }
    let have: HashSet<String> = g.output.iter().map(|o| o.name().to_string()).collect();
    for t in tensors.iter().filter(|t| !have.contains(*t)) {
        g.output.push(pb::ValueInfoProto {
            name: Some(t.clone()),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: Some(1), shape: None })),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_kernels_are_zhangs_and_sum_to_one() {
        let k = binomial(3);
        assert_eq!(k, vec![1.0 / 16.0, 2.0 / 16.0, 1.0 / 16.0, 2.0 / 16.0, 4.0 / 16.0, 2.0 / 16.0, 1.0 / 16.0, 2.0 / 16.0, 1.0 / 16.0]);
        let k5 = binomial(5);
        assert_eq!(k5.len(), 25);
        assert!((k5[12] - 36.0 / 256.0).abs() < 1e-7, "centre 6 * 6 / 16^2");
        assert!((binomial(7).iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn every_strided_op_of_the_tiny_cnn_gets_a_blurpool_and_inspect_sees_it() {
        let m = crate::tiny::build(&crate::tiny::TinySpec::default());
        let before = crate::inspect::inspect(&m.bytes).unwrap();
        assert!(!before.all_blurred);
        let r = antialias(&m.bytes, 3).unwrap();
        assert_eq!(r.blurred.iter().map(|b| (b.1.as_str(), b.2)).collect::<Vec<_>>(), vec![("Conv", 2), ("Conv", 2)]);
        assert!(r.skipped.is_empty());
        let after = crate::inspect::inspect(&r.bytes).unwrap();
        assert!(after.all_blurred, "{:?}", after.subsampling);
        assert_eq!(after.factor, before.factor, "the same cumulative subsampling");
        assert_eq!(after.subsampling.len(), 2);
        assert!(antialias(&m.bytes, 4).is_err());
        // Per-layer probes look through the blur's padding to the activation, and
        // count that padding's reach.
        let p = crate::inspect::probes(&r.bytes).unwrap();
        assert!(p.iter().all(|p| p.op != "Pad"), "{p:?}");
        assert!(p.iter().filter(|p| p.blurred).count() == 2, "{p:?}");
        assert!(p.last().unwrap().reach > crate::inspect::probes(&m.bytes).unwrap().last().unwrap().reach, "{p:?}");
    }
}
