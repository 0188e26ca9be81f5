//! `jagged models ...`: import models into ONNX files with cards, classify one image.

use anyhow::{bail, Context, Result};
use jagged_domain::spec::ModelCard;
use jagged_onnx::BuiltModel;
use std::path::{Path, PathBuf};

/// Writes `<out>/<name>.onnx` and `<out>/<name>.card.json`; returns the ONNX path.
pub fn write_model(model: &BuiltModel, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let onnx = out.join(format!("{}.onnx", model.card.name));
    std::fs::write(&onnx, &model.bytes).with_context(|| format!("writing {}", onnx.display()))?;
    let card = card_path(&onnx);
    std::fs::write(&card, serde_json::to_vec_pretty(&model.card)?).with_context(|| format!("writing {}", card.display()))?;
    Ok(onnx)
}

/// The default card path of a model file: `x.onnx` -> `x.card.json`.
pub fn card_path(onnx: &Path) -> PathBuf {
    onnx.with_extension("card.json")
}

/// Reads and checks a model card.
pub fn read_card(path: &Path) -> Result<ModelCard> {
    let text = std::fs::read_to_string(path).with_context(|| format!("model card {} cannot be read", path.display()))?;
    let card: ModelCard = serde_json::from_str(&text).with_context(|| format!("model card {} is not valid", path.display()))?;
    card.validate().map_err(|e| anyhow::anyhow!("model card {}: {e}", path.display()))?;
    Ok(card)
}

/// Imports EfficientNet-Lite0 from a legacy PyTorch checkpoint.
pub fn import_lite(variant: &str, weights: &Path, classes: Option<&Path>, wnids: Option<&Path>, out: &Path) -> Result<PathBuf> {
    let v = jagged_onnx::efficientnet::VARIANTS
        .iter()
        .find(|v| v.name == variant || v.name.replace('_', "-") == variant || v.name.ends_with(variant))
        .with_context(|| format!("unknown model `{variant}`; known: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, tiny"))?;
    let bytes = std::fs::read(weights).with_context(|| format!("reading weights {}", weights.display()))?;
    let state = jagged_onnx::pth::read_state_dict(&bytes).with_context(|| format!("reading {}", weights.display()))?;
    let classes: Vec<String> = match classes {
        Some(p) => serde_json::from_slice(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not a JSON list of class names", p.display()))?,
        None => vec![],
    };
    let mut model = jagged_onnx::efficientnet::build(*v, &state, classes).with_context(|| format!("converting {}", weights.display()))?;
    if let Some(p) = wnids {
        model.card.wnids = serde_json::from_slice(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not a JSON list of class ids", p.display()))?;
        model.card.validate().map_err(anyhow::Error::msg)?;
    }
    write_model(&model, out)
}

/// Classifies one image at the reference preprocessing (centre crop side/(side+32),
/// bicubic resize) and returns the top-5 as (class, name, probability).
pub fn predict(model: &Path, image: &Path, opts: &jagged_infer::EngineOptions) -> Result<Vec<(u32, String, f32)>> {
    let card = read_card(&card_path(model))?;
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let mut engine = jagged_infer::Engine::load(&bytes, &card, opts)?;
    let img = jagged_infer::decode_image(&std::fs::read(image).with_context(|| format!("reading {}", image.display()))?)
        .with_context(|| format!("decoding {}", image.display()))?;
    let fam = jagged_domain::transform::Family::Crop { max_shift: 0, step: 1, resize: None, resample: jagged_domain::image::Resample::default() };
    let s = card.input_size as usize;
    let prep = fam.prepare(&img, card.input_size).map_err(anyhow::Error::msg)?;
    let mut t = vec![0f32; 3 * s * s];
    prep.write_chw(fam.points()[0], &card.normalize, &mut t);
    let probs = engine.probabilities(&t, 1)?.remove(0).map_err(anyhow::Error::msg)?;
    if probs.is_empty() {
        bail!("model returned no classes");
    }
    Ok(jagged_domain::metrics::top_k(&probs, 5).into_iter().map(|(c, p)| (c, card.classes.get(c as usize).cloned().unwrap_or_default(), p)).collect())
}

/// The human-readable form of `jagged inspect`.
pub fn inspection_table(model: &Path, i: &jagged_onnx::inspect::Inspection) -> String {
    use std::fmt::Write as _;
    let dims = |s: &[i64]| s.iter().map(|d| if *d < 0 { "N".to_string() } else { d.to_string() }).collect::<Vec<_>>().join(", ");
    let mut out = format!("{} ({} nodes)\n", model.display(), i.nodes);
    for p in &i.inputs {
        let _ = writeln!(out, "input   {} [{}]", p.name, dims(&p.shape));
    }
    for p in &i.outputs {
        let _ = writeln!(out, "output  {} [{}]", p.name, dims(&p.shape));
    }
    let blurred = i.subsampling.iter().filter(|s| s.blurred).count();
    let _ = writeln!(out, "subsampling factor {}; {} subsampling op(s), {blurred} preceded by a low-pass filter", i.factor, i.subsampling.len());
    if !i.subsampling.is_empty() {
        let _ = writeln!(out, "{:>3}  {:<12} {:>6} {:>6} {:>10}  {:<7}  node", "#", "op", "kernel", "stride", "cumulative", "blurred");
        for (n, s) in i.subsampling.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>3}  {:<12} {:>6} {:>6} {:>10}  {:<7}  {}",
                n + 1,
                s.op,
                s.kernel,
                s.stride,
                s.cumulative,
                if s.blurred { "yes" } else { "no" },
                s.node
            );
        }
    }
    out
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
    let n = 8;
    let s = model.card.input_size as usize;
    let input = calibration_batch(&model.card, n);
    let stats = jagged_onnx::light::batch_stats_model(&model.bytes)?;
    if stats.layers.is_empty() {
        return Ok(Calibration { layers: 0, passes: 0, residual: 0.0 });
    }
    let names: Vec<String> = stats.layers.iter().flat_map(|l| [l.mean_out.clone(), l.sq_out.clone()]).collect();
    let outs = jagged_infer::run_outputs(&stats.bytes, &model.card.input_name, &input, [n, 3, s, s], &names, threads)
        .with_context(|| format!("calibrating {}", model.card.name))?;
    let mut values = std::collections::HashMap::new();
    for (l, mv) in stats.layers.iter().zip(outs.chunks_exact(2)) {
        if mv.iter().flatten().any(|v| !v.is_finite()) {
            bail!("calibrating {}: statistics of `{}` are not finite", model.card.name, l.mean_init);
        }
        values.insert(l.mean_init.clone(), mv[0].clone());
        values.insert(l.var_init.clone(), mv[1].clone());
    }
    model.bytes = jagged_onnx::light::set_initializers(&model.bytes, &values)?;
    let residual = calibration_residual(model, &input, threads)?;
    if residual.is_nan() || residual >= CALIBRATION_TOLERANCE {
        bail!("calibrating {}: batch-norm inputs differ from the set statistics by {residual:.2e}", model.card.name);
    }
    Ok(Calibration { layers: stats.layers.len(), passes: 2, residual })
}

/// The largest relative difference between each BatchNormalization node's running
/// statistics and those of its input on `input` (mean difference in units of the
/// running standard deviation; variance difference relative to the running one).
pub fn calibration_residual(model: &BuiltModel, input: &[f32], threads: usize) -> Result<f64> {
    let s = model.card.input_size as usize;
    let n = input.len() / (3 * s * s);
    let inst = jagged_onnx::light::instrument(&model.bytes)?;
    let names: Vec<String> = inst.layers.iter().flat_map(|l| [l.mean_out.clone(), l.sq_out.clone()]).collect();
    let outs = jagged_infer::run_outputs(&inst.bytes, &model.card.input_name, input, [n, 3, s, s], &names, threads)?;
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
    let inits = jagged_onnx::float_initializers(bytes)?;
    layers
        .iter()
        .map(|l| {
            let get = |n: &str| inits.get(n).cloned().with_context(|| format!("initializer `{n}` is missing"));
            Ok((l.mean_init.clone(), (get(&l.mean_init)?, get(&l.var_init)?)))
        })
        .collect()
}
