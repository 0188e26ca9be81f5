//! Model files and their cards on disk: `<name>.onnx` with `<name>.card.json`
//! beside it.

use crate::{BuiltModel, OnnxError};
use jagged_domain::spec::ModelCard;
use std::path::{Path, PathBuf};

/// The default card path of a model file: `x.onnx` -> `x.card.json`.
pub fn card_path(onnx: &Path) -> PathBuf {
    onnx.with_extension("card.json")
}

/// Reads and checks a model card.
pub fn read_card(path: &Path) -> Result<ModelCard, OnnxError> {
    let text = std::fs::read_to_string(path).map_err(|e| OnnxError::Card(format!("model card {} cannot be read: {e}", path.display())))?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| OnnxError::Card(format!("model card {} is not valid: {e}", path.display())))?;
    card.validate().map_err(|e| OnnxError::Card(format!("model card {}: {e}", path.display())))?;
    Ok(card)
}

/// Writes `<out>/<name>.onnx` and `<out>/<name>.card.json`; returns the ONNX path.
pub fn write_model(model: &BuiltModel, out: &Path) -> Result<PathBuf, OnnxError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| OnnxError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let onnx = out.join(format!("{}.onnx", model.card.name));
    std::fs::write(&onnx, &model.bytes).map_err(io(&onnx))?;
    let card = card_path(&onnx);
    let json = serde_json::to_vec_pretty(&model.card).map_err(|e| OnnxError::Card(e.to_string()))?;
    std::fs::write(&card, json).map_err(io(&card))?;
    Ok(onnx)
}
