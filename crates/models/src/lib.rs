//! Models as jagged uses them, as a library: import published weights or the
//! onnx package's architectures into ONNX files with model cards, calibrate
//! the batch-norm statistics of untrained ones, and classify one image.
//!
//! - [`import_lite`]: EfficientNet-Lite0/1/2 from their legacy PyTorch
//!   checkpoints (read without PyTorch), batch norm folded.
//! - [`import_light`]: a `light_*` architecture with seeded random weights and
//!   batch-norm statistics calibrated on synthetic textures ([`calibrate`]).
//! - [`import_tiny`]: the tiny test CNN.
//! - [`antialias`]: Zhang's BlurPool written into a model, without retraining.
//! - [`predict`]: the top-5 of one image at a model's reference preprocessing.
#![deny(missing_docs)]

use jagged_domain::spec::ModelCard;
use jagged_onnx::card::{card_path, read_card, write_model};
use jagged_onnx::BuiltModel;
use std::path::{Path, PathBuf};

/// What can go wrong importing, calibrating or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The name is not a model jagged can import.
    #[error("unknown model `{0}`; known: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, light_<arch>, tiny")]
    Unknown(String),
    /// A file could not be read.
    #[error("reading {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file is not what it should be (a class list, a checkpoint, a graph).
    #[error("{0}")]
    Invalid(String),
    /// Building, converting or writing the model failed.
    #[error("{what}: {cause}")]
    Onnx {
        /// What was being done.
        what: String,
        /// The cause.
        cause: jagged_onnx::OnnxError,
    },
    /// ONNX Runtime failed.
    #[error("{what}: {cause}")]
    Runtime {
        /// What was being done.
        what: String,
        /// The cause.
        cause: jagged_infer::InferError,
    },
}

type Result<T> = std::result::Result<T, ModelError>;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|cause| ModelError::Read { path: path.display().to_string(), cause })
}

fn onnx(what: impl Into<String>) -> impl FnOnce(jagged_onnx::OnnxError) -> ModelError {
    let what = what.into();
    move |cause| ModelError::Onnx { what, cause }
}

fn runtime(what: impl Into<String>) -> impl FnOnce(jagged_infer::InferError) -> ModelError {
    let what = what.into();
    move |cause| ModelError::Runtime { what, cause }
}

/// Writes the tiny test CNN (seeded) into `out`; returns the ONNX path.
pub fn import_tiny(seed: u64, out: &Path) -> Result<PathBuf> {
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { seed, ..Default::default() });
    write_model(&m, out).map_err(onnx("writing the tiny model"))
}

/// Imports a `light_*` model of the onnx package (`source`) with seeded random
/// weights and calibrated batch-norm statistics; returns the ONNX path and the
/// calibration.
pub fn import_light(name: &str, source: &Path, seed: u64, threads: usize, out: &Path) -> Result<(PathBuf, Calibration)> {
    let bytes = read(source)?;
    let mut m = jagged_onnx::light::seed(&bytes, name, seed).map_err(onnx(format!("seeding {}", source.display())))?;
    let c = calibrate(&mut m, threads)?;
    if c.layers > 0 {
        m.card.source += &format!("; batch-norm statistics calibrated on {CALIBRATION_INPUTS} synthetic textures");
    }
    Ok((write_model(&m, out).map_err(onnx(format!("writing {name}")))?, c))
}

/// Imports EfficientNet-Lite0/1/2 from a legacy PyTorch checkpoint, with class
/// names and ids from JSON lists; returns the ONNX path.
pub fn import_lite(variant: &str, weights: &Path, classes: Option<&Path>, wnids: Option<&Path>, out: &Path) -> Result<PathBuf> {
    let v = jagged_onnx::efficientnet::VARIANTS
        .iter()
        .find(|v| v.name == variant || v.name.replace('_', "-") == variant || v.name.ends_with(variant))
        .ok_or_else(|| ModelError::Unknown(variant.to_string()))?;
    let state = jagged_onnx::pth::read_state_dict(&read(weights)?).map_err(onnx(format!("reading {}", weights.display())))?;
    let list = |p: &Path, what: &str| -> Result<Vec<String>> {
        serde_json::from_slice(&read(p)?).map_err(|e| ModelError::Invalid(format!("{} is not a JSON list of {what}: {e}", p.display())))
    };
    let classes = classes.map(|p| list(p, "class names")).transpose()?.unwrap_or_default();
    let mut model = jagged_onnx::efficientnet::build(*v, &state, classes).map_err(onnx(format!("converting {}", weights.display())))?;
    if let Some(p) = wnids {
        model.card.wnids = list(p, "class ids")?;
        model.card.validate().map_err(ModelError::Invalid)?;
    }
    write_model(&model, out).map_err(onnx(format!("writing {variant}")))
}

/// A model rewritten by [`antialias`].
#[derive(Clone, Debug)]
pub struct Antialiased {
    /// The written `.onnx` file (its card beside it).
    pub path: PathBuf,
    /// Nodes given a BlurPool: (node, op, stride).
    pub blurred: Vec<(String, String, i64)>,
    /// Subsampling nodes left alone, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Writes BlurPool of size `filter` into `model` (see
/// [`jagged_onnx::antialias`]) at `out` (default `<model>_aa<filter>.onnx`),
/// with a card marked antialiased and naming its parent by hash; checks that
/// ONNX Runtime runs the rewrite and that it gives one probability per class.
pub fn antialias(model: &Path, filter: u32, out: Option<&Path>) -> Result<Antialiased> {
    use sha2::Digest;
    let bytes = read(model)?;
    let card = read_card(&card_path(model)).map_err(onnx("reading the model card"))?;
    let r = jagged_onnx::antialias::antialias(&bytes, filter).map_err(onnx(format!("rewriting {}", model.display())))?;
    if r.blurred.is_empty() {
        return Err(ModelError::Invalid(format!("{} has no subsampling op that BlurPool can be written into", model.display())));
    }
    let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let path = out.map(Path::to_path_buf).unwrap_or_else(|| model.with_file_name(format!("{stem}_aa{filter}.onnx")));
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let mut new_card = card.clone();
    new_card.name = name;
    new_card.source = format!("{}; BlurPool (binomial {filter}x{filter}) written in by `jagged models antialias`, not retrained", card.source);
    new_card.antialiased =
        Some(jagged_domain::spec::Antialiased { filter, parent_sha256: hex::encode(sha2::Sha256::digest(&bytes)), parent: card.name.clone() });
    let s = card.input_size as usize;
    let probe = calibration_batch(&card, 1);
    let outs = jagged_infer::run_outputs(&r.bytes, &card.input_name, &probe, [1, 3, s, s], std::slice::from_ref(&card.output_name), 1)
        .map_err(runtime("running the rewritten model"))?;
    if outs[0].len() != card.num_classes as usize || outs[0].iter().any(|v| !v.is_finite()) {
        return Err(ModelError::Invalid(format!("the rewrite gives {} values for {} classes", outs[0].len(), card.num_classes)));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let written = write_model(&BuiltModel { bytes: r.bytes, card: new_card }, dir).map_err(onnx(format!("writing {}", path.display())))?;
    Ok(Antialiased { path: written, blurred: r.blurred, skipped: r.skipped })
}

/// One class of a prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub class: u32,
    /// Class name from the card (empty when it has none).
    pub name: String,
    /// Probability.
    pub probability: f32,
}

/// Classifies one image at the reference preprocessing (centre crop side/(side+32),
/// bicubic resize) and returns the top-5, most probable first.
pub fn predict(model: &Path, image: &Path, opts: &jagged_infer::EngineOptions) -> Result<Vec<Prediction>> {
    let card = read_card(&card_path(model)).map_err(onnx("reading the model card"))?;
    let mut engine = jagged_infer::Engine::load(&read(model)?, &card, opts).map_err(runtime(format!("loading {}", model.display())))?;
    let img = jagged_infer::decode_image(&read(image)?).map_err(|e| ModelError::Invalid(format!("decoding {}: {e}", image.display())))?;
    let fam = jagged_domain::transform::Family::Crop(jagged_domain::transform::Crop {
        max_shift: 0,
        step: 1.0,
        resize: None,
        resample: jagged_domain::image::Resample::default(),
    });
    let s = card.input_size as usize;
    let prep = fam.prepare(&img, card.input_size).map_err(ModelError::Invalid)?;
    let mut t = vec![0f32; 3 * s * s];
    prep.write_chw(fam.points()[0], &card.normalize, &mut t);
    let probs = engine.probabilities(&t, 1).map_err(runtime("running the model"))?.remove(0).map_err(ModelError::Invalid)?;
    if probs.is_empty() {
        return Err(ModelError::Invalid("the model returned no classes".into()));
    }
    Ok(jagged_domain::metrics::top_k(&probs, 5)
        .into_iter()
        .map(|(class, probability)| Prediction { class, name: card.classes.get(class as usize).cloned().unwrap_or_default(), probability })
        .collect())
}

/// Synthetic calibration inputs, normalised for `card`: `n` deterministic
/// textures (smooth gradients, stripes and edges of varying frequency and colour)
/// at the model's input size, so calibration needs no dataset.
pub fn calibration_batch(card: &ModelCard, n: usize) -> Vec<f32> {
    let s = card.input_size as usize;
    let plane = s * s;
    let mut out = vec![0f32; n * 3 * plane];
    for i in 0..n {
        let k = i as f32 + 1.0;
        for y in 0..s {
            for x in 0..s {
                let (fx, fy) = (x as f32 / s as f32, y as f32 / s as f32);
                let rgb = [
                    128.0 + 100.0 * ((fx * 7.0 * k + fy * 3.0).sin() * (fy * 5.0 + k).cos()),
                    128.0 + 90.0 * ((fx * 2.0 - fy * 9.0 * k * 0.5 + k * 1.3).sin()),
                    if ((x / (3 + i % 7)) + (y / (5 + i % 4))) % 2 == 0 { 40.0 + 10.0 * k } else { 215.0 - 8.0 * k },
                ];
                for c in 0..3 {
                    out[i * 3 * plane + c * plane + y * s + x] = (rgb[c].clamp(0.0, 255.0) - card.normalize.mean[c]) / card.normalize.std[c];
                }
            }
        }
    }
    out
}

/// What [`calibrate`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// BatchNormalization nodes set.
    pub layers: usize,
    /// Forward passes run (one to measure, one to check).
    pub passes: usize,
    /// Largest relative difference between a node's statistics and its input's
    /// after calibration ([`calibration_residual`]).
    pub residual: f64,
}

/// Synthetic inputs a calibration runs.
pub const CALIBRATION_INPUTS: usize = 8;

/// Convergence threshold of [`calibrate`].
pub const CALIBRATION_TOLERANCE: f64 = 1e-3;

/// Data-dependent batch-norm statistics for a model with random weights: sets
/// every BatchNormalization node's running mean and variance to the mean and
/// variance of its input over a calibration batch, with every node before it
/// already normalising so, as a trained network's nodes would (without it,
/// activations of deep residual networks grow layer by layer until the softmax
/// saturates). One pass of [`jagged_onnx::light::batch_stats_model`] gives all
/// statistics; a second pass over the calibrated model measures each node's input
/// again and reports the largest relative difference (`residual`), which must be
/// below [`CALIBRATION_TOLERANCE`].
pub fn calibrate(model: &mut BuiltModel, threads: usize) -> Result<Calibration> {
    let n = CALIBRATION_INPUTS;
    let s = model.card.input_size as usize;
    let input = calibration_batch(&model.card, n);
    let stats = jagged_onnx::light::batch_stats_model(&model.bytes).map_err(onnx(format!("instrumenting {}", model.card.name)))?;
    if stats.layers.is_empty() {
        return Ok(Calibration { layers: 0, passes: 0, residual: 0.0 });
    }
    let names: Vec<String> = stats.layers.iter().flat_map(|l| [l.mean_out.clone(), l.sq_out.clone()]).collect();
    let outs = jagged_infer::run_outputs(&stats.bytes, &model.card.input_name, &input, [n, 3, s, s], &names, threads)
        .map_err(runtime(format!("calibrating {}", model.card.name)))?;
    let mut values = std::collections::HashMap::new();
    for (l, mv) in stats.layers.iter().zip(outs.chunks_exact(2)) {
        if mv.iter().flatten().any(|v| !v.is_finite()) {
            return Err(ModelError::Invalid(format!("calibrating {}: statistics of `{}` are not finite", model.card.name, l.mean_init)));
        }
        values.insert(l.mean_init.clone(), mv[0].clone());
        values.insert(l.var_init.clone(), mv[1].clone());
    }
    model.bytes = jagged_onnx::light::set_initializers(&model.bytes, &values).map_err(onnx(format!("calibrating {}", model.card.name)))?;
    let residual = calibration_residual(model, &input, threads)?;
    if residual.is_nan() || residual >= CALIBRATION_TOLERANCE {
        return Err(ModelError::Invalid(format!(
            "calibrating {}: batch-norm inputs differ from the set statistics by {residual:.2e}",
            model.card.name
        )));
    }
    Ok(Calibration { layers: stats.layers.len(), passes: 2, residual })
}

/// The largest relative difference between each BatchNormalization node's running
/// statistics and those of its input on `input` (mean difference in units of the
/// running standard deviation; variance difference relative to the running one).
pub fn calibration_residual(model: &BuiltModel, input: &[f32], threads: usize) -> Result<f64> {
    let s = model.card.input_size as usize;
    let n = input.len() / (3 * s * s);
    let inst = jagged_onnx::light::instrument(&model.bytes).map_err(onnx(format!("instrumenting {}", model.card.name)))?;
    let names: Vec<String> = inst.layers.iter().flat_map(|l| [l.mean_out.clone(), l.sq_out.clone()]).collect();
    let outs = jagged_infer::run_outputs(&inst.bytes, &model.card.input_name, input, [n, 3, s, s], &names, threads)
        .map_err(runtime(format!("measuring {}", model.card.name)))?;
    let current = current_stats(&model.bytes, &inst.layers)?;
    let mut residual = 0f64;
    for (l, c) in inst.layers.iter().zip(outs.chunks_exact(2)) {
        let (m, sq) = (&c[0], &c[1]);
        let (cur_m, cur_v) = &current[&l.mean_init];
        for k in 0..m.len() {
            let var = (sq[k] as f64 - (m[k] as f64).powi(2)).max(0.0);
            let scale = (cur_v[k] as f64).max(1e-4);
            residual = residual.max((var - cur_v[k] as f64).abs() / scale).max((m[k] as f64 - cur_m[k] as f64).abs() / scale.sqrt());
        }
    }
    Ok(residual)
}

/// Running (mean, variance) per layer, keyed by the mean initializer's name.
type Stats = std::collections::HashMap<String, (Vec<f32>, Vec<f32>)>;

/// The running statistics of each layer.
fn current_stats(bytes: &[u8], layers: &[jagged_onnx::light::BnLayer]) -> Result<Stats> {
    let inits = jagged_onnx::float_initializers(bytes).map_err(onnx("reading initializers"))?;
    layers
        .iter()
        .map(|l| {
            let get = |n: &str| inits.get(n).cloned().ok_or_else(|| ModelError::Invalid(format!("initializer `{n}` is missing")));
            Ok((l.mean_init.clone(), (get(&l.mean_init)?, get(&l.var_init)?)))
        })
        .collect()
}
