//! What every session of an engine shares: making one on a device, binding
//! its output, and reading its rows; and a session with a rendering in front.

use crate::{init_runtime, Device, EngineOptions, InferError};
use jagged_domain::spec::ModelCard;
use ort::memory::Allocator;
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, ValueType};

/// The model with a rendering in front, and the output tensor its full
/// batches are bound to (allocated once per batch size).
pub(crate) struct Renderer {
    pub(crate) session: Session,
    pub(crate) out: Option<Tensor<f32>>,
}

/// The shape of `session`'s output for `n` inputs, when the graph fixes all but
/// the batch and class dimensions.
pub(crate) fn output_shape(session: &Session, card: &ModelCard, n: usize) -> Option<Vec<usize>> {
    let o = session.outputs().iter().find(|o| o.name() == card.output_name)?;
    let ValueType::Tensor { shape, .. } = o.dtype() else { return None };
    let rank = shape.len();
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            d if d >= 0 => Some(d as usize),
            _ if i == 0 => Some(n),
            _ if i + 1 == rank => Some(card.num_classes as usize),
            _ => None,
        })
        .collect()
}

/// Binds output `name` to a tensor in host memory allocated once per batch
/// size (kept in `slot`), or, where the graph leaves its shape open, to host
/// memory the runtime allocates.
pub(crate) fn bind_output(
    binding: &mut IoBinding,
    name: &str,
    shape: Option<Vec<usize>>,
    slot: &mut Option<Tensor<f32>>,
    alloc: &Allocator,
) -> Result<(), InferError> {
    let run = |e: ort::Error| InferError::Run(e.to_string());
    let Some(shape) = shape else {
        return binding.bind_output_to_device(name, alloc.memory_info()).map_err(run);
    };
    let fits = slot.as_ref().is_some_and(|t| t.shape().iter().map(|&d| d as usize).eq(shape.iter().copied()));
    if !fits {
        *slot = Some(Tensor::<f32>::new(alloc, shape).map_err(run)?);
    }
    binding.bind_output(name, slot.as_mut().expect("allocated above")).map_err(run)
}

/// The `n x k` values of a bound output.
pub(crate) fn extract_rows<T: ort::value::TensorValueTypeMarker + ?Sized>(
    value: &ort::value::Value<T>,
    n: usize,
    k: usize,
) -> Result<Vec<f32>, InferError> {
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| InferError::Run(e.to_string()))?;
    if data.len() != n * k {
        return Err(InferError::Run(format!("output shape {shape:?} is not [{n}, {k}]")));
    }
    Ok(data.to_vec())
}

/// A session of `bytes` on `opts`' device.
pub(crate) fn session(bytes: &[u8], card: &ModelCard, opts: &EngineOptions) -> Result<Session, InferError> {
    let env = init_runtime()?;
    let merr = |m: String| InferError::Model { model: card.name.clone(), message: m };
    let builder = Session::builder(env)
        .map_err(|e| merr(e.to_string()))?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| merr(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| merr(e.to_string()))?;
    let mut builder = match opts.device {
        Device::Cpu => builder,
        Device::Cuda { id } => builder
            .with_execution_providers([ort::ep::CUDA::default()
                .with_device_id(id)
                .with_tf32(!opts.strict_fp32)
                .with_cuda_graph(opts.fixed_buffers)
                .build()
                .error_on_failure()])
            .map_err(|e| {
                merr(format!(
                    "CUDA execution provider unavailable on device {id}: {e} \
                     (ORT_DYLIB_PATH must name the GPU build of ONNX Runtime, from onnxruntime-gpu)"
                ))
            })?,
    };
    builder.commit_from_memory(bytes).map_err(|e| merr(format!("does not load: {e}")))
}
