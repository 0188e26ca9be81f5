//! ONNX Runtime inference for jagged: loading the runtime library, sessions
//! checked against their model card, batched runs, and image decoding with
//! limits. Everything here is synchronous and blocking; async callers run it on
//! blocking threads.
//!
//! The runtime is loaded dynamically from `ORT_DYLIB_PATH` (an absolute path to
//! `libonnxruntime.so`); [`init_runtime`] turns a missing or wrong path into a
//! clear error instead of a panic at first use.
//!
//! - `runtime.rs`: the library, once per process ([`init_runtime`]);
//! - `options.rs`: where and how sessions run ([`Device`], [`EngineOptions`]);
//! - `engine.rs`: one model's session ([`Engine`]): loading against its card,
//!   runs on plain, staged and fixed buffers, probabilities;
//! - `staging.rs`: the host memory inputs are rendered into ([`Staging`]) and
//!   the device buffers CUDA graphs replay with;
//! - `rendering.rs`: the model with a rendering in front, inputs drawn in the
//!   graph from pixels bound once ([`Rendering`], [`BoundPixels`]);
//! - `session.rs`: what every session shares (made on a device, outputs bound
//!   and read);
//! - `decode.rs`: images decoded within limits ([`decode_image_with`]).
#![deny(missing_docs)]

mod decode;
mod engine;
mod options;
mod rendering;
mod runtime;
mod session;
mod staging;

pub use decode::{decode_image, decode_image_with, MAX_PIXELS};
pub use engine::{run_outputs, Engine};
pub use options::{Device, EngineOptions};
pub use rendering::{BoundPixels, PerInput, Rendering};
pub use runtime::{init_runtime, runtime_version};
pub use staging::Staging;

/// Errors of inference and decoding.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The runtime library could not be loaded.
    #[error("onnx runtime: {0}")]
    Runtime(String),
    /// The model does not load or does not match its card.
    #[error("model `{model}`: {message}")]
    Model {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// A run failed.
    #[error("inference: {0}")]
    Run(String),
    /// An image could not be decoded or exceeds the limits.
    #[error("{0}")]
    Decode(String),
}
