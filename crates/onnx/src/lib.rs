//! Building ONNX models without Python: a small graph builder over the ONNX
//! protobuf schema, a reader for legacy PyTorch checkpoints, and the two model
//! families jagged ships:
//!
//! - [`efficientnet`]: EfficientNet-Lite from its published PyTorch weights
//!   (read by [`pth`]), with batch norm folded into the convolutions.
//! - [`tiny`]: a tiny CNN with seeded random weights and strided layers, so its
//!   predictions change under one-pixel shifts; used by the test suite.
//! - [`light`]: the onnx package's `light_*` architectures with seeded weights.
//! - [`inspect`]: where a graph subsamples and whether a blur precedes it.
//! - [`antialias`]: Zhang's BlurPool written into an existing graph.
//! - [`card`]: model files and their cards on disk.
//! - [`views`]: a grid's inputs rendered inside the graph, on the model's device.
//!
//! ```
//! let model = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
//! assert!(!model.bytes.is_empty());
//! assert_eq!(model.card.input_size, 32);
//! ```
#![deny(missing_docs)]

pub mod antialias;
pub mod card;
pub mod efficientnet;
pub mod graph;
pub mod inspect;
pub mod light;
pub mod pth;
pub mod tiny;
pub mod views;

/// The generated ONNX protobuf types.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// Errors of model building and import.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The checkpoint is not in the expected format.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A weight the architecture needs is missing or has the wrong shape.
    #[error("weights: {0}")]
    Weights(String),
    /// A file is not a readable ONNX graph.
    #[error("{0}")]
    Graph(String),
    /// A model card cannot be read, written or is not valid.
    #[error("{0}")]
    Card(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A built model: ONNX bytes plus its card.
pub struct BuiltModel {
    /// Serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// The model card to store beside it.
    pub card: jagged_domain::spec::ModelCard,
}

/// The float initializers of a model (from `float_data` or little-endian
/// `raw_data`), by name.
pub fn float_initializers(bytes: &[u8]) -> Result<std::collections::HashMap<String, Vec<f32>>, OnnxError> {
    use prost::Message;
    let model = pb::ModelProto::decode(bytes).map_err(|e| OnnxError::Graph(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.unwrap_or_default();
    Ok(graph
        .initializer
        .into_iter()
        .filter(|t| t.data_type == Some(1))
        .map(|t| {
            let v = if !t.float_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data.as_deref().unwrap_or_default().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            };
            (t.name().to_string(), v)
        })
        .collect())
}
