//! Turning a spec file into a [`ResolvedSweep`]: locate and check every file,
//! read labels, upload models and images to the object store, and read each
//! model's subsampling structure from its graph (once, here, so reports never
//! parse graphs).

use crate::{io_err, store_err, ClientError};
use futures::StreamExt;
use jagged_domain::spec::{ImageRef, ResolvedModel, ResolvedSweep, Structure, SweepSpec};
use jagged_domain::transform::Family;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ClientError>;

const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "JPEG"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// One dataset entry before upload: an image, or a sequence's frames.
struct Entry {
    name: String,
    paths: Vec<PathBuf>,
    label: Option<i32>,
}

/// A class index from a name: the card's class name (or its first comma part), or
/// its class id.
fn class_index(name: &str, classes: &[String], wnids: &[String]) -> Option<usize> {
    classes.iter().position(|c| c == name || c.split(',').next().map(str::trim) == Some(name)).or_else(|| wnids.iter().position(|w| w == name))
}

fn parse_label(raw: &str, classes: &[String], wnids: &[String], line: usize, labels: &Path) -> Result<Option<i32>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(i) = raw.parse::<i32>() {
        return Ok(Some(i));
    }
    let idx = class_index(raw, classes, wnids).ok_or_else(|| {
        ClientError::Spec(format!("{}:{line}: label `{raw}` is neither a class index nor a class name or id of the model", labels.display()))
    })?;
    Ok(Some(idx as i32))
}

/// Orders names with their digit runs compared as numbers (`f2` before `f10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x, y) {
            ((true, p), (true, q)) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            _ => x.1.cmp(y.1),
        };
        if o.is_ne() {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// The images of a folder, sorted by name (naturally: frame order).
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut imgs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(format!("reading {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    imgs.sort_by(|a, b| natural_cmp(&a.file_name().unwrap().to_string_lossy(), &b.file_name().unwrap().to_string_lossy()));
    Ok(imgs)
}

/// Where a family or the dataset finds its items.
struct Source<'a> {
    /// Spec field prefix for errors (`dataset`, `families[2]`).
    field: String,
    root: PathBuf,
    labels: Option<&'a str>,
    limit: Option<u32>,
    /// Items are folders of frames, not image files.
    sequences: bool,
}

/// Lists a source's items: a labels CSV (`item,label`) when there is one, else an
/// ImageFolder layout (`<class>/<item>`), else the items of the folder, unlabelled.
fn list_items(src: &Source<'_>, classes: &[String], wnids: &[String]) -> Result<Vec<Entry>> {
    let (root, field) = (&src.root, &src.field);
    if !root.is_dir() {
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: {} is not a folder", root.display())));
    }
    let what = if src.sequences { "sequence" } else { "image" };
    let entry = |name: String, path: PathBuf, label: Option<i32>| -> Result<Entry> {
        let paths = if src.sequences { images_in(&path)? } else { vec![path] };
        Ok(Entry { name, paths, label })
    };
    let labels = match src.labels {
        Some(l) => {
            let p = root.join(l);
            if !p.is_file() {
                return Err(ClientError::Spec(format!("invalid spec: `{field}.labels`: {} does not exist", p.display())));
            }
            Some(p)
        }
        None => Some(root.join("labels.csv")).filter(|p| p.is_file()),
    };
    let mut entries = Vec::new();
    if let Some(labels) = labels {
        let text = std::fs::read_to_string(&labels).map_err(io_err(format!("reading {}", labels.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let lower = line.to_ascii_lowercase();
            if line.is_empty() || (n == 0 && (lower.starts_with("file") || lower.starts_with("sequence"))) {
                continue;
            }
            let (file, label) = line.split_once(',').unwrap_or((line, ""));
            let file = file.trim().trim_matches('"');
            let path = root.join(file);
            if (src.sequences && !path.is_dir()) || (!src.sequences && !path.is_file()) {
                return Err(ClientError::Spec(format!("{}:{}: {what} `{file}` does not exist", labels.display(), n + 1)));
            }
            let label = parse_label(label.trim_matches('"'), classes, wnids, n + 1, &labels)?;
            entries.push(entry(file.to_string(), path, label)?);
        }
    } else {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(root).map_err(io_err(format!("reading {}", root.display())))? {
            let p = e.map_err(io_err(format!("reading {}", root.display())))?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if is_image(&p) {
                files.push(p);
            }
        }
        dirs.sort();
        // Sequences directly under the root hold frames; class folders hold sequences.
        let flat_sequences = src.sequences && dirs.iter().any(|d| images_in(d).is_ok_and(|v| !v.is_empty()));
        if src.sequences && flat_sequences {
            for d in dirs {
                entries.push(entry(d.file_name().unwrap().to_string_lossy().to_string(), d, None)?);
            }
        } else if !dirs.is_empty() {
            // ImageFolder: a folder named by a class name or id of the model (ImageNet's
            // `val/<wnid>/`) gets that class; otherwise classes are the sorted folder
            // names, indexed in that order (torchvision's convention).
            for (i, d) in dirs.iter().enumerate() {
                let cname = d.file_name().unwrap().to_string_lossy().to_string();
                let label = class_index(&cname, classes, wnids).map(|x| x as i32).unwrap_or(i as i32);
                let items: Vec<PathBuf> = if src.sequences {
                    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
                        .map_err(io_err(format!("reading {}", d.display())))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_dir())
                        .collect();
                    v.sort();
                    v
                } else {
                    images_in(d)?
                };
                for p in items {
                    let name = format!("{cname}/{}", p.file_name().unwrap().to_string_lossy());
                    entries.push(entry(name, p, Some(label))?);
                }
            }
        } else if !src.sequences {
            files.sort();
            for p in files {
                entries.push(entry(p.file_name().unwrap().to_string_lossy().to_string(), p, None)?);
            }
        }
    }
    if let Some(limit) = src.limit {
        entries.truncate(limit as usize);
    }
    if entries.is_empty() {
        let holds = if src.sequences { "no sequences (folders of .png/.jpg frames)" } else { "no images (.png, .jpg, .jpeg)" };
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: {} holds {holds}", root.display())));
    }
    if let Some(e) = entries.iter().find(|e| e.paths.is_empty()) {
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: sequence `{}` holds no frames", e.name)));
    }
    Ok(entries)
}

/// Uploads entries (deduplicated by content) and returns their references.
async fn upload(store: &dyn ObjectStore, entries: Vec<Entry>, frames: Option<usize>) -> Result<Vec<ImageRef>> {
    let total = entries.len();
    let mut uploads = futures::stream::iter(entries.into_iter().map(|e| async move {
        let mut keys = Vec::with_capacity(e.paths.len());
        for p in e.paths.iter().take(frames.unwrap_or(usize::MAX)) {
            let bytes = tokio::fs::read(p).await.map_err(io_err(format!("reading {}", p.display())))?;
            keys.push(jagged_artifacts::put_blob(store, bytes.into()).await.map_err(store_err(format!("uploading {}", p.display())))?);
        }
        let key = keys.first().cloned().unwrap_or_default();
        let frames = if frames.is_some() { keys } else { vec![] };
        Ok::<_, ClientError>(ImageRef { name: e.name, key, label: e.label, frames })
    }))
    .buffered(16);
    let mut out = Vec::with_capacity(total);
    while let Some(img) = uploads.next().await {
        out.push(img?);
    }
    Ok(out)
}

/// Reads a model's graph: refuses a file that is not an ONNX graph or whose
/// declared input and output do not match its card (naming the model, the
/// field and both values), and returns its subsampling structure.
fn check_graph(bytes: &[u8], card: &jagged_domain::spec::ModelCard, field: &str, file: &str) -> Result<Structure> {
    let refuse = |m: String| ClientError::Spec(format!("invalid spec: `{field}`: model `{}` ({file}) {m}", card.name));
    let graph = jagged_onnx::inspect::inspect(bytes).map_err(|e| refuse(format!("cannot be read: {e}")))?;
    let port = |ports: &[jagged_onnx::inspect::Port], name: &str| ports.iter().find(|p| p.name == name).map(|p| p.shape.clone());
    let (input, output) = (port(&graph.inputs, &card.input_name), port(&graph.outputs, &card.output_name));
    card.check_ports(input.as_deref(), output.as_deref()).map_err(refuse)?;
    Ok(graph.structure())
}

/// Reads, checks and uploads everything a spec names.
pub async fn resolve(spec_path: &Path, store: &dyn ObjectStore) -> Result<(String, ResolvedSweep)> {
    resolve_with(spec_path, store, &Overrides::default()).await
}

/// Changes to a spec given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Another dataset folder (relative to the working directory); the spec's
    /// `dataset.labels` is dropped with it (the folder's own `labels.csv`, or its
    /// ImageFolder layout, labels it).
    pub dataset: Option<PathBuf>,
    /// Use only the first N images.
    pub limit: Option<u32>,
    /// Submit even if the same sweep (same spec, models and images) exists.
    pub again: bool,
}

/// [`resolve`] with command-line overrides applied to the spec first.
pub async fn resolve_with(spec_path: &Path, store: &dyn ObjectStore, over: &Overrides) -> Result<(String, ResolvedSweep)> {
    let text = std::fs::read_to_string(spec_path).map_err(io_err(format!("reading spec {}", spec_path.display())))?;
    let mut spec = SweepSpec::from_toml(&text).map_err(|e| ClientError::Spec(format!("{}: {e}", spec_path.display())))?;
    if let Some(d) = &over.dataset {
        let abs = std::fs::canonicalize(d).map_err(|e| ClientError::Spec(format!("--dataset {}: no such folder ({e})", d.display())))?;
        let limit = spec.dataset.as_ref().and_then(|x| x.limit);
        spec.dataset = Some(jagged_domain::spec::DatasetSpec { path: abs.display().to_string(), labels: None, limit });
    }
    if let Some(n) = over.limit {
        match spec.dataset.as_mut() {
            Some(d) => d.limit = Some(n),
            None => return Err(ClientError::Spec(format!("--limit applies to the dataset, and {} has none", spec_path.display()))),
        }
    }
    spec.validate().map_err(|e| ClientError::Spec(format!("{}: {e}", spec_path.display())))?;
    let base = spec_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut models = Vec::new();
    for (i, m) in spec.models.iter().enumerate() {
        let (key, bytes, card_path, file) = match (&m.path, &m.uri) {
            (Some(p), _) => {
                let path = base.join(p);
                if !path.is_file() {
                    return Err(ClientError::Spec(format!("invalid spec: `models[{i}].path`: model file {} does not exist", path.display())));
                }
                let bytes = bytes::Bytes::from(std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?);
                let key = jagged_artifacts::put_blob(store, bytes.clone()).await.map_err(store_err(format!("uploading {}", path.display())))?;
                let card = m.card.as_ref().map(|c| base.join(c)).unwrap_or_else(|| jagged_onnx::card::card_path(&path));
                (key, bytes, card, path.display().to_string())
            }
            (None, Some(uri)) => {
                let bytes = jagged_artifacts::get(store, uri)
                    .await
                    .map_err(|e| ClientError::Spec(format!("invalid spec: `models[{i}].uri`: `{uri}` is not in the object store ({e})")))?;
                let card = m
                    .card
                    .as_ref()
                    .map(|c| base.join(c))
                    .ok_or_else(|| ClientError::Spec(format!("invalid spec: `models[{i}].card` is needed with `uri`")))?;
                (uri.clone(), bytes, card, uri.clone())
            }
            (None, None) => unreachable!("validated"),
        };
        if !card_path.is_file() {
            return Err(ClientError::Spec(format!("invalid spec: `models[{i}].card`: model card {} does not exist", card_path.display())));
        }
        let card = jagged_onnx::card::read_card(&card_path).map_err(|e| ClientError::Spec(e.to_string()))?;
        let name = m.name.clone().unwrap_or_else(|| card.name.clone());
        let field = if m.path.is_some() { format!("models[{i}].path") } else { format!("models[{i}].uri") };
        let structure = check_graph(&bytes, &card, &field, &file)?;
        models.push(ResolvedModel { name, key, card, structure: Some(structure) });
    }
    let classes = models.first().map(|m| m.card.classes.clone()).unwrap_or_default();
    let wnids = models.first().map(|m| m.card.wnids.clone()).unwrap_or_default();
    let images = match &spec.dataset {
        Some(d) => {
            let src = Source { field: "dataset".into(), root: base.join(&d.path), labels: d.labels.as_deref(), limit: d.limit, sequences: false };
            upload(store, list_items(&src, &classes, &wnids)?, None).await?
        }
        None => vec![],
    };
    let mut family_items = std::collections::BTreeMap::new();
    for (f, fam) in spec.families.iter_mut().enumerate() {
        if let Family::Sequence { path, frames, labels, limit, .. } = fam {
            let src = Source { field: format!("families[{f}]"), root: base.join(&*path), labels: labels.as_deref(), limit: *limit, sequences: true };
            let entries = list_items(&src, &classes, &wnids)?;
            // Default length: the shortest sequence's.
            let n = *frames.get_or_insert_with(|| entries.iter().map(|e| e.paths.len()).min().unwrap_or(0) as u32);
            if n < 2 {
                return Err(ClientError::Spec(format!(
                    "invalid spec: `families[{f}].frames`: sequences need at least 2 frames; {} has {n}",
                    src.root.display()
                )));
            }
            family_items.insert(f as u32, upload(store, entries, Some(n as usize)).await?);
        }
    }
    let resolved = ResolvedSweep { spec, models, images, family_items };
    resolved.validate().map_err(|e| ClientError::Spec(format!("{}: {e}", spec_path.display())))?;
    Ok((text, resolved))
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn frames_sort_in_natural_order() {
        let mut v = vec!["f10.png", "f2.png", "f1.png", "f02.png", "g1.png"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["f1.png", "f02.png", "f2.png", "f10.png", "g1.png"]);
    }
}
