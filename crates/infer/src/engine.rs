//! One model's ONNX Runtime session, checked against its card: runs on plain
//! inputs, on inputs staged in the engine's host memory (by I/O binding), and
//! on fixed device buffers; outputs as probabilities.

use crate::session::{bind_output, extract_rows, output_shape, session, Renderer};
use crate::staging::{Fixed, FixedBatch, HostMemory, Staging};
use crate::{init_runtime, Device, EngineOptions, InferError};
use jagged_domain::metrics::softmax;
use jagged_domain::spec::{ModelCard, OutputKind};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};

/// One model's session, checked against its card.
pub struct Engine {
    pub(crate) session: Session,
    /// The model with each rendering in front, where attached, by [`Rendering`].
    pub(crate) renderers: [Option<Renderer>; 3],
    pub(crate) card: ModelCard,
    /// Name of the execution provider (recorded with every result).
    pub provider: &'static str,
    /// Numeric precision of the run (recorded with every result).
    pub precision: &'static str,
    /// Intermediate tensors the model exposes for a `layers` sweep (set by
    /// whoever exposed them; empty otherwise).
    pub probes: Vec<jagged_domain::metrics::equivariance::Probe>,
    /// Host memory inputs are staged in and outputs land in.
    pub(crate) host: HostMemory,
    /// The model's output tensor for a full batch, allocated once and bound to
    /// every run of that size.
    pub(crate) out: Option<Tensor<f32>>,

    /// With [`EngineOptions::fixed_buffers`]: where the device's copies lie.
    pub(crate) fixed: Option<Fixed>,
}

impl Engine {
    /// Creates a session from ONNX bytes and checks input and output against the card.
    pub fn load(bytes: &[u8], card: &ModelCard, opts: &EngineOptions) -> Result<Engine, InferError> {
        let merr = |m: String| InferError::Model { model: card.name.clone(), message: m };
        let session = session(bytes, card, opts)?;
        // Both tensors must be float32; their shapes are checked against the card
        // by the same rule submit applies to the graph file.
        let float_dims = |what: &str, name: &str, t: &ValueType| match t {
            ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } => Ok(shape.iter().copied().collect::<Vec<i64>>()),
            other => Err(merr(format!("{what} `{name}` is {other:?}, expected a float32 tensor"))),
        };
        let input = match session.inputs().iter().find(|o| o.name() == card.input_name) {
            Some(o) => Some(float_dims("input", &card.input_name, o.dtype())?),
            None => None,
        };
        let output = match session.outputs().iter().find(|o| o.name() == card.output_name) {
            Some(o) => Some(float_dims("output", &card.output_name, o.dtype())?),
            None => None,
        };
        card.check_ports(input.as_deref(), output.as_deref()).map_err(merr)?;
        let (provider, precision) = opts.labels();
        let host = HostMemory::for_session(&session, opts.device);
        let fixed = match (opts.fixed_buffers, opts.device) {
            (false, _) => None,
            (true, Device::Cpu) => Some(Fixed { device: Allocator::default(), buffers: Vec::new() }),
            (true, Device::Cuda { id }) => {
                let info =
                    MemoryInfo::new(AllocationDevice::CUDA, id, AllocatorType::Device, MemoryType::Default).map_err(|e| merr(e.to_string()))?;
                let device = Allocator::new(&session, info).map_err(|e| merr(format!("no device allocator for fixed buffers: {e}")))?;
                Some(Fixed { device, buffers: Vec::new() })
            }
        };
        Ok(Engine { session, renderers: [None, None, None], card: card.clone(), provider, precision, probes: Vec::new(), host, out: None, fixed })
    }

    /// Whether inputs are staged in page-locked host memory (CUDA, when its
    /// provider gives a pinned allocator) rather than pageable memory.
    pub fn pinned_staging(&self) -> bool {
        self.host.pinned
    }

    /// A zeroed input tensor for `n` inputs in the engine's staging memory (see
    /// [`Engine::probabilities_staged`]).
    pub fn staging(&self, n: usize) -> Result<Staging, InferError> {
        let s = self.card.input_size as usize;
        let mut tensor = Tensor::<f32>::new(&self.host.input, [n.max(1), 3, s, s]).map_err(|e| InferError::Run(format!("staging memory: {e}")))?;
        tensor.extract_tensor_mut().1.fill(0.0);
        Ok(Staging { tensor, inputs: n.max(1) })
    }

    /// [`Engine::probabilities`] on the first `n` inputs of `input`. A full
    /// tensor goes to the runtime by I/O binding, as it lies in staging memory,
    /// with the output written into a tensor allocated once; fewer inputs (an
    /// unpadded last batch) run as [`Engine::probabilities`] does.
    pub fn probabilities_staged(&mut self, input: &Staging, n: usize) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        assert!(n <= input.inputs, "{n} inputs of a staging tensor of {}", input.inputs);
        if n < input.inputs {
            let plane = 3 * (self.card.input_size as usize).pow(2);
            return self.probabilities(&input.data()[..n * plane], n);
        }
        let run = |e: ort::Error| InferError::Run(e.to_string());
        if self.fixed.is_some() {
            let raw = self.run_fixed(input, n)?;
            return Ok(self.to_probabilities(&raw));
        }
        let mut binding = self.session.create_binding().map_err(run)?;
        binding.bind_input(self.card.input_name.as_str(), &input.tensor).map_err(run)?;
        let shape = output_shape(&self.session, &self.card, n);
        bind_output(&mut binding, &self.card.output_name, shape, &mut self.out, &self.host.output)?;
        let raw = {
            let outputs = self.session.run_binding(&binding).map_err(run)?;
            extract_rows(&outputs[self.card.output_name.as_str()], n, self.card.num_classes as usize)?
        };
        Ok(self.to_probabilities(&raw))
    }

    /// A full batch through the fixed buffers: the staged input copied to the
    /// device tensor, the run on it, the device output copied to the host.
    fn run_fixed(&mut self, input: &Staging, n: usize) -> Result<Vec<f32>, InferError> {
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let fixed = self.fixed.as_mut().expect("fixed buffers");
        let s = self.card.input_size as usize;
        let shape = output_shape(&self.session, &self.card, n)
            .ok_or_else(|| InferError::Run(format!("fixed buffers need the output's shape: `{}` has open dimensions", self.card.output_name)))?;
        let k = match fixed.buffers.iter().position(|b| b.n == n) {
            Some(k) => k,
            None => {
                let mut options = ort::session::RunOptions::new().map_err(run)?;
                options.set("gpu_graph_id", fixed.buffers.len().to_string()).map_err(run)?;
                fixed.buffers.push(FixedBatch {
                    n,
                    input: Tensor::<f32>::new(&fixed.device, [n, 3, s, s]).map_err(run)?,
                    output: Tensor::<f32>::new(&fixed.device, shape.clone()).map_err(run)?,
                    host: Tensor::<f32>::new(&self.host.output, shape).map_err(run)?,
                    options,
                });
                fixed.buffers.len() - 1
            }
        };
        let b = &mut fixed.buffers[k];
        input.tensor.copy_into(&mut b.input).map_err(|e| InferError::Run(format!("copying the batch to the device: {e}")))?;
        let mut binding = self.session.create_binding().map_err(run)?;
        binding.bind_input(self.card.input_name.as_str(), &b.input).map_err(run)?;
        binding.bind_output(self.card.output_name.as_str(), &mut b.output).map_err(run)?;
        self.session.run_binding_with_options(&binding, &b.options).map_err(run)?;
        b.output.copy_into(&mut b.host).map_err(|e| InferError::Run(format!("copying the outputs from the device: {e}")))?;
        extract_rows(&b.host, n, self.card.num_classes as usize)
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Runs `n` inputs laid out NCHW in `batch`; returns the raw outputs, `n x classes`.
    pub fn run(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, InferError> {
        Ok(self.run_with(batch, n, &[])?.0)
    }

    /// [`Engine::run`], also returning the named intermediate tensors (graph
    /// outputs the model was given, e.g. by `jagged_onnx::antialias::expose`),
    /// each as its shape and values.
    #[allow(clippy::type_complexity)]
    pub fn run_with(&mut self, batch: &[f32], n: usize, extra: &[String]) -> Result<(Vec<f32>, Vec<(Vec<usize>, Vec<f32>)>), InferError> {
        let s = self.card.input_size as usize;
        assert_eq!(batch.len(), n * 3 * s * s);
        let input = TensorRef::from_array_view(([n, 3, s, s], batch)).map_err(|e| InferError::Run(e.to_string()))?;
        let outputs = self.session.run(ort::inputs![self.card.input_name.as_str() => input]).map_err(|e| InferError::Run(e.to_string()))?;
        let (shape, data) = outputs[self.card.output_name.as_str()].try_extract_tensor::<f32>().map_err(|e| InferError::Run(e.to_string()))?;
        let k = self.card.num_classes as usize;
        if data.len() != n * k {
            return Err(InferError::Run(format!("output shape {shape:?} is not [{n}, {k}]")));
        }
        let mut inner = Vec::with_capacity(extra.len());
        for name in extra {
            let v = outputs.get(name.as_str()).ok_or_else(|| InferError::Run(format!("the model has no output `{name}`")))?;
            let (shape, values) = v.try_extract_tensor::<f32>().map_err(|e| InferError::Run(format!("output `{name}`: {e}")))?;
            inner.push((shape.iter().map(|&d| d.max(0) as usize).collect(), values.to_vec()));
        }
        Ok((data.to_vec(), inner))
    }

    /// Runs and converts each row to probabilities (softmax of logits, or as is).
    /// Rows with a non-finite value are returned as `Err` with a reason.
    pub fn probabilities(&mut self, batch: &[f32], n: usize) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        let raw = self.run(batch, n)?;
        Ok(self.to_probabilities(&raw))
    }

    /// [`Engine::probabilities`] with the named intermediate tensors (see [`Engine::run_with`]).
    #[allow(clippy::type_complexity)]
    pub fn probabilities_with(
        &mut self,
        batch: &[f32],
        n: usize,
        extra: &[String],
    ) -> Result<(Vec<Result<Vec<f32>, String>>, Vec<(Vec<usize>, Vec<f32>)>), InferError> {
        let (raw, inner) = self.run_with(batch, n, extra)?;
        Ok((self.to_probabilities(&raw), inner))
    }

    pub(crate) fn to_probabilities(&self, raw: &[f32]) -> Vec<Result<Vec<f32>, String>> {
        let k = self.card.num_classes as usize;
        raw.chunks_exact(k)
            .map(|row| {
                if row.iter().any(|v| !v.is_finite()) {
                    return Err("model output is not finite (NaN or infinity)".to_string());
                }
                let mut p = vec![0f32; k];
                match self.card.output {
                    OutputKind::Logits => softmax(row, &mut p),
                    OutputKind::Probabilities => p.copy_from_slice(row),
                }
                Ok(p)
            })
            .collect()
    }
}

/// Runs ONNX `bytes` once on the CPU with one NCHW input and returns the named
/// outputs, flattened (for model preparation, e.g. calibrating statistics).
pub fn run_outputs(
    bytes: &[u8],
    input_name: &str,
    input: &[f32],
    shape: [usize; 4],
    outputs: &[String],
    threads: usize,
) -> Result<Vec<Vec<f32>>, InferError> {
    let env = init_runtime()?;
    fn err(e: impl std::fmt::Display) -> InferError {
        InferError::Run(e.to_string())
    }
    let mut session = Session::builder(env).map_err(err)?.with_intra_threads(threads.max(1)).map_err(err)?.commit_from_memory(bytes).map_err(err)?;
    let tensor = TensorRef::from_array_view((shape, input)).map_err(err)?;
    let out = session.run(ort::inputs![input_name => tensor]).map_err(err)?;
    outputs
        .iter()
        .map(|name| {
            let v = out.get(name.as_str()).ok_or_else(|| InferError::Run(format!("no output `{name}`")))?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(err)?;
            Ok(data.to_vec())
        })
        .collect()
}
