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
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { intra_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), device: Device::Cpu, strict_fp32: false }
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
    /// The model with the grid rendering in front, when attached.
    views: Option<Session>,
    card: ModelCard,
    /// Name of the execution provider (recorded with every result).
    pub provider: &'static str,
    /// Numeric precision of the run (recorded with every result).
    pub precision: &'static str,
    /// Intermediate tensors the model exposes for a `layers` sweep (set by
    /// whoever exposed them; empty otherwise).
    pub probes: Vec<jagged_domain::metrics::equivariance::Probe>,
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
        Ok(Engine { session, views: None, card: card.clone(), provider, precision, probes: Vec::new() })
    }

    /// Loads the model with the grid rendering in front (`jagged_onnx::views::prepend`
    /// made `bytes`), as a second session on the same device, for [`Engine::run_views`].
    pub fn attach_views(&mut self, bytes: &[u8], opts: &EngineOptions) -> Result<(), InferError> {
        self.views = Some(session(bytes, &self.card, opts)?);
        Ok(())
    }

    /// Whether [`Engine::attach_views`] gave this engine the rendering session.
    pub fn has_views(&self) -> bool {
        self.views.is_some()
    }

    /// Runs the rendering session on `n` inputs, each a view (5 numbers, see
    /// `jagged_onnx::views`) of images whose RGB pixels lie in `pixels`, with the
    /// normalised `background` outside them; returns the raw outputs, `n x classes`.
    pub fn run_views(&mut self, pixels: &[u8], views: &[i64], background: [f32; 3]) -> Result<Vec<f32>, InferError> {
        let n = views.len() / 5;
        assert_eq!(views.len(), n * 5);
        assert_eq!(pixels.len() % 3, 0);
        let session = self.views.as_mut().ok_or_else(|| InferError::Run("no rendering session: attach_views first".into()))?;
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
            .with_execution_providers([ort::ep::CUDA::default().with_device_id(id).with_tf32(!opts.strict_fp32).build().error_on_failure()])
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
