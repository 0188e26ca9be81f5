//! Turning a spec file into a [`ResolvedSweep`]: locate and check every file,
//! read labels, and upload models and images to the object store.

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use jagged_domain::spec::{ImageRef, ModelCard, ResolvedModel, ResolvedSweep, SweepSpec};
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};

const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "JPEG"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// One dataset entry before upload.
struct Entry {
    name: String,
    path: PathBuf,
    label: Option<i32>,
}

/// A class index from a name: the card's class name (or its first comma part), or
/// its class id.
fn class_index(name: &str, classes: &[String], wnids: &[String]) -> Option<usize> {
    classes
        .iter()
        .position(|c| c == name || c.split(',').next().map(str::trim) == Some(name))
        .or_else(|| wnids.iter().position(|w| w == name))
}

fn parse_label(raw: &str, classes: &[String], wnids: &[String], line: usize, labels: &Path) -> Result<Option<i32>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(i) = raw.parse::<i32>() {
        return Ok(Some(i));
    }
    let idx = class_index(raw, classes, wnids)
        .with_context(|| format!("{}:{line}: label `{raw}` is neither a class index nor a class name or id of the model", labels.display()))?;
    Ok(Some(idx as i32))
}

fn list_dataset(spec: &SweepSpec, base: &Path, classes: &[String], wnids: &[String]) -> Result<Vec<Entry>> {
    let root = base.join(&spec.dataset.path);
    if !root.is_dir() {
        bail!("invalid spec: `dataset.path`: {} is not a folder", root.display());
    }
    let labels = match &spec.dataset.labels {
        Some(l) => {
            let p = root.join(l);
            if !p.is_file() {
                bail!("invalid spec: `dataset.labels`: {} does not exist", p.display());
            }
            Some(p)
        }
        None => Some(root.join("labels.csv")).filter(|p| p.is_file()),
    };
    let mut entries = Vec::new();
    if let Some(labels) = labels {
        let text = std::fs::read_to_string(&labels).with_context(|| format!("reading {}", labels.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (n == 0 && line.to_ascii_lowercase().starts_with("file")) {
                continue;
            }
            let (file, label) = line.split_once(',').unwrap_or((line, ""));
            let file = file.trim().trim_matches('"');
            let path = root.join(file);
            if !path.is_file() {
                bail!("{}:{}: image `{file}` does not exist", labels.display(), n + 1);
            }
            entries.push(Entry { name: file.to_string(), path, label: parse_label(label.trim_matches('"'), classes, wnids, n + 1, &labels)? });
        }
    } else {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if is_image(&p) {
                files.push(p);
            }
        }
        dirs.sort();
        files.sort();
        if !dirs.is_empty() {
            // ImageFolder: a folder named by a class name or id of the model (ImageNet's
            // `val/<wnid>/`) gets that class; otherwise classes are the sorted folder
            // names, indexed in that order (torchvision's convention).
            for (i, d) in dirs.iter().enumerate() {
                let cname = d.file_name().unwrap().to_string_lossy().to_string();
                let label = class_index(&cname, classes, wnids).map(|x| x as i32).unwrap_or(i as i32);
                let mut imgs: Vec<PathBuf> = std::fs::read_dir(d)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image(p)).collect();
                imgs.sort();
                for p in imgs {
                    let name = format!("{cname}/{}", p.file_name().unwrap().to_string_lossy());
                    entries.push(Entry { name, path: p, label: Some(label) });
                }
            }
        } else {
            for p in files {
                entries.push(Entry { name: p.file_name().unwrap().to_string_lossy().to_string(), path: p, label: None });
            }
        }
    }
    if let Some(limit) = spec.dataset.limit {
        entries.truncate(limit as usize);
    }
    if entries.is_empty() {
        bail!("invalid spec: `dataset.path`: {} holds no images (.png, .jpg, .jpeg)", root.display());
    }
    Ok(entries)
}

/// Reads, checks and uploads everything a spec names.
pub async fn resolve(spec_path: &Path, store: &dyn ObjectStore) -> Result<(String, ResolvedSweep)> {
    let text = std::fs::read_to_string(spec_path).with_context(|| format!("reading spec {}", spec_path.display()))?;
    let spec = SweepSpec::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", spec_path.display()))?;
    let base = spec_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut models = Vec::new();
    for (i, m) in spec.models.iter().enumerate() {
        let (key, card_path) = match (&m.path, &m.uri) {
            (Some(p), _) => {
                let path = base.join(p);
                if !path.is_file() {
                    bail!("invalid spec: `models[{i}].path`: model file {} does not exist", path.display());
                }
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let key = jagged_artifacts::put_blob(store, bytes.into()).await.context("uploading the model")?;
                let card = m.card.as_ref().map(|c| base.join(c)).unwrap_or_else(|| crate::models::card_path(&path));
                (key, card)
            }
            (None, Some(uri)) => {
                store
                    .head(&object_store::path::Path::from(uri.as_str()))
                    .await
                    .with_context(|| format!("invalid spec: `models[{i}].uri`: `{uri}` is not in the object store"))?;
                let card = m.card.as_ref().map(|c| base.join(c)).with_context(|| format!("invalid spec: `models[{i}].card` is needed with `uri`"))?;
                (uri.clone(), card)
            }
            (None, None) => unreachable!("validated"),
        };
        if !card_path.is_file() {
            bail!("invalid spec: `models[{i}].card`: model card {} does not exist", card_path.display());
        }
        let card: ModelCard = crate::models::read_card(&card_path)?;
        let name = m.name.clone().unwrap_or_else(|| card.name.clone());
        models.push(ResolvedModel { name, key, card });
    }
    let classes = models.first().map(|m| m.card.classes.clone()).unwrap_or_default();
    let wnids = models.first().map(|m| m.card.wnids.clone()).unwrap_or_default();
    let entries = list_dataset(&spec, &base, &classes, &wnids)?;
    let total = entries.len();
    let mut uploads = futures::stream::iter(entries.into_iter().map(|e| async move {
        let bytes = tokio::fs::read(&e.path).await.with_context(|| format!("reading image {}", e.path.display()))?;
        let key = jagged_artifacts::put_blob(store, bytes.into()).await.with_context(|| format!("uploading {}", e.name))?;
        Ok::<_, anyhow::Error>(ImageRef { name: e.name, key, label: e.label })
    }))
    .buffered(16);
    let mut images = Vec::with_capacity(total);
    while let Some(img) = uploads.next().await {
        images.push(img?);
    }
    let resolved = ResolvedSweep { spec, models, images };
    resolved.validate().map_err(|e| anyhow::anyhow!("{}: {e}", spec_path.display()))?;
    Ok((text, resolved))
}
