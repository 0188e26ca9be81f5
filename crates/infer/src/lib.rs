//! ONNX Runtime inference for jagged: loading the runtime library, sessions
//! checked against their model card, batched runs, and image decoding with
//! limits. Everything here is synchronous and blocking; async callers run it on
//! blocking threads.
//!
//! The runtime is loaded dynamically from `ORT_DYLIB_PATH` (an absolute path to
//! `libonnxruntime.so`); [`init_runtime`] turns a missing or wrong path into a
//! clear error instead of a panic at first use.
#![deny(missing_docs)]

use jagged_domain::image::{JpegDecoder, Rgb8};
use jagged_domain::metrics::softmax;
use jagged_domain::spec::{ModelCard, OutputKind};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};
use std::sync::OnceLock;

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

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `ORT_DYLIB_PATH` once per process.
pub fn init_runtime() -> Result<&'static ort::environment::Environment, InferError> {
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH").ok_or_else(|| {
            "ORT_DYLIB_PATH is not set; point it at libonnxruntime.so (`scripts/fetch.sh ort` puts one in .cache/jagged/ort)".to_string()
        })?;
        let p = std::path::Path::new(&path);
        if !p.is_file() {
            return Err(format!("ORT_DYLIB_PATH={} does not name a file", p.display()));
        }
        let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
        ort::init_from(&abs)
            .map_err(|e| format!("loading {}: {e}", abs.display()))?
            .with_name("jagged")
            .build()
            .map_err(|e| format!("creating the environment: {e}"))
    })
    .as_ref()
    .map_err(|e| InferError::Runtime(e.clone()))
}

/// The loaded ONNX Runtime's version (`1.22.0`), as its `GetVersionString`
/// says; empty before [`init_runtime`] succeeded.
pub fn runtime_version() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    if !matches!(ENV.get(), Some(Ok(_))) {
        return String::new();
    }
    VERSION
        .get_or_init(|| {
            let Some(path) = std::env::var_os("ORT_DYLIB_PATH") else { return String::new() };
            // The library is loaded already: this takes another reference to it.
            // SAFETY: `OrtGetApiBase` takes nothing and returns a pointer to a static
            // struct of two function pointers, the second of which returns a static
            // NUL-terminated string; both are ONNX Runtime's stable ABI.
            unsafe {
                let Ok(lib) = libloading::Library::new(path) else { return String::new() };
                let Ok(get) = lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase") else { return String::new() };
                let base = get();
                if base.is_null() {
                    return String::new();
                }
                let v = ((*base).GetVersionString)();
                if v.is_null() {
                    return String::new();
                }
                std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned()
            }
        })
        .clone()
}

/// Where a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on GPU `id` (needs the GPU build of the runtime
    /// library, from `onnxruntime-gpu`).
    Cuda {
        /// CUDA device ordinal.
        id: i32,
    },
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda { id: 0 }),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(|id| Device::Cuda { id })
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda { id } => write!(f, "cuda:{id}"),
        }
    }
}

/// How a session runs.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Threads inside one operator (ORT intra-op).
    pub intra_threads: usize,
    /// Execution provider.
    pub device: Device,
    /// On CUDA, turn TF32 off so convolutions and matrix products run in full fp32.
    pub strict_fp32: bool,
    /// Run full batches on input and output tensors at fixed addresses in the
    /// device's memory, the staged inputs copied in and the outputs copied out
    /// around each run: what CUDA graphs need, which this turns on with CUDA
    /// (the graph is captured at the first runs and replayed after). The same
    /// copies run on the CPU provider, where they only cost.
    pub fixed_buffers: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            intra_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            device: Device::Cpu,
            strict_fp32: false,
            fixed_buffers: false,
        }
    }
}

impl EngineOptions {
    /// CPU with `threads` intra-op threads.
    pub fn cpu(threads: usize) -> EngineOptions {
        EngineOptions { intra_threads: threads, ..Default::default() }
    }

    /// The execution provider and precision names recorded with results.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self.device {
            Device::Cpu => ("cpu", "fp32"),
            Device::Cuda { .. } if self.strict_fp32 => ("cuda", "fp32"),
            Device::Cuda { .. } => ("cuda", "tf32"),
        }
    }
}

/// One model's session, checked against its card.
pub struct Engine {
    session: Session,
    /// The model with each rendering in front, where attached, by [`Rendering`].
    renderers: [Option<Renderer>; 3],
    card: ModelCard,
    /// Name of the execution provider (recorded with every result).
    pub provider: &'static str,
    /// Numeric precision of the run (recorded with every result).
    pub precision: &'static str,
    /// Intermediate tensors the model exposes for a `layers` sweep (set by
    /// whoever exposed them; empty otherwise).
    pub probes: Vec<jagged_domain::metrics::equivariance::Probe>,
    /// Host memory inputs are staged in and outputs land in.
    host: HostMemory,
    /// The model's output tensor for a full batch, allocated once and bound to
    /// every run of that size.
    out: Option<Tensor<f32>>,

    /// With [`EngineOptions::fixed_buffers`]: where the device's copies lie.
    fixed: Option<Fixed>,
}

/// Per batch size, the input and output in the device's memory, at addresses
/// that stay the same for every run (a captured CUDA graph replays with them),
/// and the host tensor the output is copied to. Each size runs as its own
/// graph (ONNX Runtime's `gpu_graph_id`, the size's place here); buffers are
/// never freed while the engine lives.
struct Fixed {
    device: Allocator,
    buffers: Vec<FixedBatch>,
}

struct FixedBatch {
    n: usize,
    input: Tensor<f32>,
    output: Tensor<f32>,
    host: Tensor<f32>,
    options: ort::session::RunOptions,
}

/// Host memory the runtime reads inputs from and writes outputs to: on CUDA,
/// page-locked (pinned) memory from the execution provider's allocator, which the
/// device copies by DMA (from ordinary, pageable memory the runtime first copies
/// into a pinned buffer of its own, synchronously); on the CPU, the runtime's own
/// allocator, which it reads in place.
struct HostMemory {
    input: Allocator,
    output: Allocator,
    pinned: bool,
}

impl HostMemory {
    fn for_session(session: &Session, device: Device) -> HostMemory {
        if let Device::Cuda { id } = device {
            let pinned = |kind: MemoryType| {
                // The provider registers its pinned allocator under device 0 in some
                // runtime versions and under the GPU's ordinal in others.
                [id, 0].into_iter().find_map(|d| {
                    let info = MemoryInfo::new(AllocationDevice::CUDA_PINNED, d, AllocatorType::Device, kind).ok()?;
                    Allocator::new(session, info).ok()
                })
            };
            // Without one (see `Engine::pinned_staging`), pageable memory serves.
            if let (Some(input), Some(output)) = (pinned(MemoryType::CPUInput), pinned(MemoryType::CPUOutput)) {
                return HostMemory { input, output, pinned: true };
            }
        }
        HostMemory { input: Allocator::default(), output: Allocator::default(), pinned: false }
    }
}

/// A batch's input tensor in the engine's host staging memory ([`Engine::staging`]):
/// rendered into in place, then handed to the runtime without a copy on the host.
pub struct Staging {
    tensor: Tensor<f32>,
    inputs: usize,
}

impl Staging {
    /// How many inputs it holds.
    pub fn capacity(&self) -> usize {
        self.inputs
    }

    /// The inputs, NCHW, to render into.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.tensor.extract_tensor_mut().1
    }

    /// The inputs, NCHW.
    pub fn data(&self) -> &[f32] {
        self.tensor.extract_tensor().1
    }
}

/// What each input of a batch rendered in the graph needs besides its view.
#[derive(Clone, Copy, Debug)]
pub enum PerInput<'a> {
    /// Nothing ([`Rendering::Windows`]).
    None,
    /// A sine and a cosine ([`Rendering::Turns`]).
    Turns(&'a [f32]),
    /// Its taps ([`Rendering::Shifts`]: x weights, a zero, y weights, a zero).
    Taps(&'a [f64]),
}

/// Which rendering session runs a shard's inputs in the graph
/// ([`Engine::attach`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    /// Plain windows (`jagged_onnx::views::prepend`).
    Windows,
    /// Rotations (`jagged_onnx::views::prepend_turns`).
    Turns,
    /// Sub-pixel windows (`jagged_onnx::views::prepend_shifts`).
    Shifts,
}

/// The model with a rendering in front, and the output tensor its full
/// batches are bound to (allocated once per batch size).
struct Renderer {
    session: Session,
    out: Option<Tensor<f32>>,
}

/// Pixels handed to the rendering session once ([`Engine::bind_pixels`]) and
/// kept where the session runs (on CUDA: copied to the device once), for any
/// number of batches of views over them ([`Engine::probabilities_bound_views`]).
pub struct BoundPixels {
    binding: IoBinding,
    rendering: Rendering,
    /// Bytes handed over: the pixels and the background.
    pub bytes: u64,
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

    /// Hands `pixels` (RGB, as [`Engine::run_views`] takes them) and the
    /// normalised `background` to the rendering session once, for batches of
    /// views over them ([`Engine::probabilities_bound_views`]).
    pub fn bind_pixels(&mut self, pixels: &[u8], background: [f32; 3]) -> Result<BoundPixels, InferError> {
        self.bind_pixels_for(Rendering::Windows, pixels, background)
    }

    /// [`Engine::bind_pixels`] for `rendering`'s session (only plain windows
    /// take a background: rotations show black, sub-pixel windows the edge).
    pub fn bind_pixels_for(&mut self, rendering: Rendering, pixels: &[u8], background: [f32; 3]) -> Result<BoundPixels, InferError> {
        assert_eq!(pixels.len() % 3, 0);
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let mut px = Tensor::<u8>::new(&self.host.input, [(pixels.len() / 3).max(1), 3]).map_err(run)?;
        let session = self.renderer(rendering)?;
        let data = px.extract_tensor_mut().1;
        data[..pixels.len()].copy_from_slice(pixels);
        data[pixels.len()..].fill(0);
        let mut binding = session.create_binding().map_err(run)?;
        binding.bind_input("jagged_pixels", &px).map_err(run)?;
        let mut bytes = pixels.len() as u64;
        if rendering == Rendering::Windows {
            let bg = Tensor::<f32>::from_array(([1usize, 3], background.to_vec())).map_err(run)?;
            binding.bind_input("jagged_background", &bg).map_err(run)?;
            bytes += 12;
        }
        Ok(BoundPixels { binding, rendering, bytes })
    }

    /// [`Engine::probabilities_views`] over pixels bound before: only the views
    /// (5 numbers each) go to the runtime.
    pub fn probabilities_bound_views(&mut self, bound: &mut BoundPixels, views: &[i64]) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        self.probabilities_bound(bound, views, PerInput::None)
    }

    /// [`Engine::probabilities_bound_views`] for any rendering, with what its
    /// inputs need besides their views.
    pub fn probabilities_bound(
        &mut self,
        bound: &mut BoundPixels,
        views: &[i64],
        extra: PerInput<'_>,
    ) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        let n = views.len() / 5;
        assert_eq!(views.len(), n * 5);
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let vw = Tensor::<i64>::from_array(([n, 5], views.to_vec())).map_err(run)?;
        bound.binding.bind_input("jagged_views", &vw).map_err(run)?;
        match (bound.rendering, extra) {
            (Rendering::Windows, PerInput::None) => {}
            (Rendering::Turns, PerInput::Turns(turns)) => {
                assert_eq!(turns.len(), n * 2, "a sine and a cosine per input");
                let t = Tensor::<f32>::from_array(([n, 2], turns.to_vec())).map_err(run)?;
                bound.binding.bind_input("jagged_turns", &t).map_err(run)?;
            }
            (Rendering::Shifts, PerInput::Taps(taps)) => {
                let k = taps.len() / n.max(1);
                assert_eq!(taps.len(), n * k, "the same taps per input");
                let t = Tensor::<f64>::from_array(([n, k], taps.to_vec())).map_err(run)?;
                bound.binding.bind_input("jagged_taps", &t).map_err(run)?;
            }
            (r, _) => return Err(InferError::Run(format!("{r:?} rendering given the wrong inputs"))),
        }
        let Engine { renderers, card, host, .. } = self;
        let r = renderers[bound.rendering as usize].as_mut().ok_or_else(|| InferError::Run("no rendering session".into()))?;
        let shape = output_shape(&r.session, card, n);
        bind_output(&mut bound.binding, &card.output_name, shape, &mut r.out, &host.output)?;
        let raw = {
            let outputs = r.session.run_binding(&bound.binding).map_err(run)?;
            extract_rows(&outputs[card.output_name.as_str()], n, card.num_classes as usize)?
        };
        Ok(self.to_probabilities(&raw))
    }

    /// Loads the model with `rendering` in front (the matching
    /// `jagged_onnx::views::prepend*` made `bytes`), as another session on the
    /// same device, for [`Engine::bind_pixels_for`].
    pub fn attach(&mut self, rendering: Rendering, bytes: &[u8], opts: &EngineOptions) -> Result<(), InferError> {
        // Its inputs change size with the images bound: no fixed buffers.
        let session = session(bytes, &self.card, &EngineOptions { fixed_buffers: false, ..opts.clone() })?;
        self.renderers[rendering as usize] = Some(Renderer { session, out: None });
        Ok(())
    }

    /// [`Engine::attach`] of the plain windows' rendering, for [`Engine::run_views`].
    pub fn attach_views(&mut self, bytes: &[u8], opts: &EngineOptions) -> Result<(), InferError> {
        self.attach(Rendering::Windows, bytes, opts)
    }

    /// Whether the engine has `rendering`'s session.
    pub fn renders(&self, rendering: Rendering) -> bool {
        self.renderers[rendering as usize].is_some()
    }

    fn renderer(&mut self, rendering: Rendering) -> Result<&mut Session, InferError> {
        let r = self.renderers[rendering as usize].as_mut();
        r.map(|r| &mut r.session).ok_or_else(|| InferError::Run(format!("no rendering session for {rendering:?}: attach it first")))
    }

    /// Runs the rendering session on `n` inputs, each a view (5 numbers, see
    /// `jagged_onnx::views`) of images whose RGB pixels lie in `pixels`, with the
    /// normalised `background` outside them; returns the raw outputs, `n x classes`.
    pub fn run_views(&mut self, pixels: &[u8], views: &[i64], background: [f32; 3]) -> Result<Vec<f32>, InferError> {
        let n = views.len() / 5;
        assert_eq!(views.len(), n * 5);
        assert_eq!(pixels.len() % 3, 0);
        let session = &mut self.renderers[Rendering::Windows as usize]
            .as_mut()
            .ok_or_else(|| InferError::Run("no rendering session: attach_views first".into()))?
            .session;
        let run = |e: ort::Error| InferError::Run(e.to_string());
        let px = TensorRef::from_array_view(([pixels.len() / 3, 3], pixels)).map_err(run)?;
        let vw = TensorRef::from_array_view(([n, 5], views)).map_err(run)?;
        let bg = TensorRef::from_array_view(([1usize, 3], &background[..])).map_err(run)?;
        let outputs = session.run(ort::inputs!["jagged_pixels" => px, "jagged_views" => vw, "jagged_background" => bg]).map_err(run)?;
        let (shape, data) = outputs[self.card.output_name.as_str()].try_extract_tensor::<f32>().map_err(run)?;
        let k = self.card.num_classes as usize;
        if data.len() != n * k {
            return Err(InferError::Run(format!("output shape {shape:?} is not [{n}, {k}]")));
        }
        Ok(data.to_vec())
    }

    /// [`Engine::run_views`], each row converted to probabilities as [`Engine::probabilities`] does.
    pub fn probabilities_views(&mut self, pixels: &[u8], views: &[i64], background: [f32; 3]) -> Result<Vec<Result<Vec<f32>, String>>, InferError> {
        let raw = self.run_views(pixels, views, background)?;
        Ok(self.to_probabilities(&raw))
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

    fn to_probabilities(&self, raw: &[f32]) -> Vec<Result<Vec<f32>, String>> {
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

/// The shape of `session`'s output for `n` inputs, when the graph fixes all but
/// the batch and class dimensions.
fn output_shape(session: &Session, card: &ModelCard, n: usize) -> Option<Vec<usize>> {
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
fn bind_output(
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
fn extract_rows<T: ort::value::TensorValueTypeMarker + ?Sized>(value: &ort::value::Value<T>, n: usize, k: usize) -> Result<Vec<f32>, InferError> {
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| InferError::Run(e.to_string()))?;
    if data.len() != n * k {
        return Err(InferError::Run(format!("output shape {shape:?} is not [{n}, {k}]")));
    }
    Ok(data.to_vec())
}

/// A session of `bytes` on `opts`' device.
fn session(bytes: &[u8], card: &ModelCard, opts: &EngineOptions) -> Result<Session, InferError> {
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

/// Largest image accepted, in pixels (checked from the header, before decoding).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Decodes PNG, JPEG, WebP or TIFF bytes to RGB, refusing images over [`MAX_PIXELS`] before
/// allocating their pixels; JPEG with the builtin decoder.
pub fn decode_image(bytes: &[u8]) -> Result<Rgb8, InferError> {
    decode_image_with(bytes, JpegDecoder::Builtin)
}

/// [`decode_image`] with JPEG files read by `jpeg`.
pub fn decode_image_with(bytes: &[u8], jpeg: JpegDecoder) -> Result<Rgb8, InferError> {
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| InferError::Decode(format!("cannot read: {e}")))?;
    // Only formats read in full are tried; any other is named, never called corrupt.
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP | image::ImageFormat::Tiff) => {}
        Some(other) => {
            let name = other.extensions_str().first().map(|e| e.to_uppercase()).unwrap_or_else(|| format!("{other:?}"));
            return Err(InferError::Decode(format!("unsupported format {name} (jagged reads PNG, JPEG, WebP and TIFF)")));
        }
        None => return Err(InferError::Decode("unsupported format: not a PNG, JPEG, WebP or TIFF file (unknown signature)".into())),
    }
    // JPEG decoders fill a cut-off file with grey rather than fail: insist on the
    // end-of-image marker near the end (after any trailing padding).
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(InferError::Decode("corrupt image: truncated JPEG (no end-of-image marker)".into()));
        }
    }
    let format = reader.format();
    let (w, h) = reader.into_dimensions().map_err(|e| InferError::Decode(format!("corrupt image header: {e}")))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(InferError::Decode(format!("{w}x{h} pixels exceeds the limit of {MAX_PIXELS}")));
    }
    if format == Some(image::ImageFormat::Jpeg) && jpeg == JpegDecoder::LibjpegTurbo {
        return decode_libjpeg_turbo(bytes);
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().expect("read above");
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| InferError::Decode(format!("corrupt image: {e}")))?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(InferError::Decode("image has no pixels".into()));
    }
    Ok(Rgb8::from_raw(w, h, rgb.into_raw()).expect("rgb8 buffer size"))
}

/// Decodes a JPEG file with libjpeg-turbo's decoder as Pillow calls it: output in
/// RGB (greyscale replicated), the accurate integer IDCT, fancy upsampling.
fn decode_libjpeg_turbo(bytes: &[u8]) -> Result<Rgb8, InferError> {
    // libjpeg reports fatal errors by unwinding out of its error handler.
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<(usize, usize, Vec<u8>)> {
        let mut d = mozjpeg::Decompress::new_mem(bytes)?;
        if matches!(d.color_space(), mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK) {
            return Err(std::io::Error::other("CMYK JPEG: the libjpeg-turbo decoder gives RGB only for YCbCr, RGB and greyscale files"));
        }
        d.dct_method(mozjpeg::DctMethod::IntegerSlow);
        d.do_fancy_upsampling(true);
        let mut started = d.rgb()?;
        let (w, h) = (started.width(), started.height());
        let data = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((w, h, data))
    });
    let (w, h, data) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(InferError::Decode(format!("corrupt image: {e}"))),
        Err(panic) => {
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            return Err(InferError::Decode(format!("corrupt image: {msg}")));
        }
    };
    if w == 0 || h == 0 {
        return Err(InferError::Decode("image has no pixels".into()));
    }
    Rgb8::from_raw(w as u32, h as u32, data).ok_or_else(|| InferError::Decode("corrupt image: short scanlines".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn devices_parse_and_label_their_results() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda { id: 0 }));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda { id: 3 }));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("gpu".parse::<Device>().unwrap_err().contains("cpu, cuda or cuda:N"));
        let mut o = EngineOptions { device: Device::Cuda { id: 0 }, ..EngineOptions::cpu(1) };
        assert_eq!(o.labels(), ("cuda", "tf32"));
        o.strict_fp32 = true;
        assert_eq!(o.labels(), ("cuda", "fp32"));
        assert_eq!(EngineOptions::cpu(2).labels(), ("cpu", "fp32"));
    }

    #[test]
    fn decodes_png_pixels_exactly() {
        let img = decode_image(&png(5, 3)).unwrap();
        assert_eq!((img.width, img.height), (5, 3));
        assert_eq!(img.pixel(4, 2), [4, 2, 7]);
    }

    #[test]
    fn truncated_and_non_images_are_refused() {
        let mut bytes = png(64, 64);
        bytes.truncate(bytes.len() / 2);
        assert!(decode_image(&bytes).unwrap_err().to_string().contains("corrupt"));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9])))
            .write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .unwrap();
        let jpeg = jpeg.into_inner();
        assert!(decode_image(&jpeg).is_ok());
        assert!(decode_image(&jpeg[..jpeg.len() * 2 / 3]).unwrap_err().to_string().contains("truncated JPEG"));
        assert!(decode_image(b"just some text, not an image").unwrap_err().to_string().contains("unsupported format: not a PNG, JPEG, WebP or TIFF"));
    }
}
