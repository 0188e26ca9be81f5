//! A minimal builder for inference graphs (opset 13).

use crate::pb;
use prost::Message;

/// ONNX element type `FLOAT`.
const FLOAT: i32 = 1;

/// Accumulates nodes and initializers, then serializes a `ModelProto`.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    counter: usize,
}

/// A node attribute.
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
}

impl Graph {
    /// A fresh tensor name with a readable prefix.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    /// Adds a float initializer and returns its name.
    pub fn init(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> String {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "initializer {name}");
        self.inits.push(pb::TensorProto {
            name: Some(name.to_string()),
            dims: dims.to_vec(),
            data_type: Some(FLOAT),
            float_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a node with one output and returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_lowercase());
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = pb::AttributeProto { name: Some(name.to_string()), ..Default::default() };
                match a {
                    Attr::Int(i) => {
                        p.i = Some(i);
                        p.r#type = Some(pb::attribute_proto::AttributeType::Int as i32);
                    }
                    Attr::Ints(v) => {
                        p.ints = v;
                        p.r#type = Some(pb::attribute_proto::AttributeType::Ints as i32);
                    }
                    Attr::Float(f) => {
                        p.f = Some(f);
                        p.r#type = Some(pb::attribute_proto::AttributeType::Float as i32);
                    }
                }
                p
            })
            .collect();
        self.nodes.push(pb::NodeProto {
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            attribute,
            ..Default::default()
        });
        out
    }

    /// Serializes with a float NCHW input `[N, 3, side, side]` (N symbolic) and a
    /// float output `[N, classes]`; `output` is renamed to `output_name`.
    pub fn finish(mut self, input_name: &str, side: i64, output: &str, output_name: &str, classes: i64) -> Vec<u8> {
        self.nodes.push(pb::NodeProto {
            op_type: Some("Identity".into()),
            input: vec![output.to_string()],
            output: vec![output_name.to_string()],
            name: Some(output_name.to_string()),
            ..Default::default()
        });
        let dim = |d: Result<i64, &str>| pb::tensor_shape_proto::Dimension {
            value: Some(match d {
                Ok(v) => pb::tensor_shape_proto::dimension::Value::DimValue(v),
                Err(p) => pb::tensor_shape_proto::dimension::Value::DimParam(p.to_string()),
            }),
            ..Default::default()
        };
        let value = |name: &str, dims: Vec<pb::tensor_shape_proto::Dimension>| pb::ValueInfoProto {
            name: Some(name.to_string()),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: Some(FLOAT),
                    shape: Some(pb::TensorShapeProto { dim: dims }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let graph = pb::GraphProto {
            name: Some("jagged".into()),
            node: self.nodes,
            initializer: self.inits,
            input: vec![value(input_name, vec![dim(Err("N")), dim(Ok(3)), dim(Ok(side)), dim(Ok(side))])],
            output: vec![value(output_name, vec![dim(Err("N")), dim(Ok(classes))])],
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: Some(8),
            producer_name: Some("jagged".into()),
            opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(13) }],
            graph: Some(graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// TF "SAME" static padding `[begin, end]` for one spatial axis.
pub fn same_pad(input: i64, kernel: i64, stride: i64) -> (i64, i64, i64) {
    let out = (input + stride - 1) / stride;
    let total = ((out - 1) * stride + kernel - input).max(0);
    (total / 2, total - total / 2, out)
}

pub use jagged_domain::rng::SplitMix;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_pad(224, 3, 2), (0, 1, 112));
        assert_eq!(same_pad(112, 5, 2), (1, 2, 56));
        assert_eq!(same_pad(56, 3, 1), (1, 1, 56));
        assert_eq!(same_pad(14, 5, 1), (2, 2, 14));
    }
}
