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
    let fam = jagged_domain::transform::Family::Crop {
        max_shift: 0,
        step: 1,
        resize: None,
        resample: jagged_domain::image::Resample::default(),
    };
    let s = card.input_size as usize;
    let prep = fam.prepare(&img, card.input_size).map_err(anyhow::Error::msg)?;
    let mut t = vec![0f32; 3 * s * s];
    prep.write_chw(fam.points()[0], &card.normalize, &mut t);
    let probs = engine.probabilities(&t, 1)?.remove(0).map_err(anyhow::Error::msg)?;
    if probs.is_empty() {
        bail!("model returned no classes");
    }
    Ok(jagged_domain::metrics::top_k(&probs, 5)
        .into_iter()
        .map(|(c, p)| (c, card.classes.get(c as usize).cloned().unwrap_or_default(), p))
        .collect())
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
