//! Turning a spec file into a [`ResolvedSweep`]: locate and check every file,
//! read labels, upload models and images to the object store, and read each
//! model's subsampling structure from its graph (once, here, so reports never
//! parse graphs).

use crate::{io_err, store_err, ClientError};
use futures::StreamExt;
use jagged_domain::spec::{ImageRef, Layout, ResolvedModel, ResolvedSweep, Structure, SweepSpec, Unlisted};
use jagged_domain::transform::Family;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ClientError>;

/// Extensions of the image files jagged reads (PNG, JPEG, WebP, TIFF).
const IMAGE_EXTS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "tif", "tiff"];

/// Extensions of image formats jagged does not read.
const OTHER_IMAGE_EXTS: [&str; 11] = ["gif", "bmp", "ico", "avif", "heic", "heif", "jxl", "pnm", "ppm", "tga", "svg"];

fn ext(p: &Path) -> Option<String> {
    p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase)
}

fn is_image(p: &Path) -> bool {
    ext(p).is_some_and(|e| IMAGE_EXTS.contains(&e.as_str()))
}

/// Why a file in a dataset folder is not read, if it is not.
fn skip_reason(p: &Path) -> Option<String> {
    match ext(p) {
        Some(e) if IMAGE_EXTS.contains(&e.as_str()) => None,
        Some(e) if OTHER_IMAGE_EXTS.contains(&e.as_str()) => Some(format!("unsupported format {}", e.to_uppercase())),
        _ => Some("not an image (.png, .jpg, .jpeg, .webp, .tif, .tiff)".into()),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_hidden(p: &Path) -> bool {
    file_name(p).starts_with('.')
}

/// `a, b, c and 4 more`.
fn some_of(names: &[String]) -> String {
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        format!("{shown} and {} more", names.len() - 5)
    } else {
        shown
    }
}

/// `1,000`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    let mut imgs: Vec<PathBuf> = folder(dir)?.1.into_iter().filter(|p| is_image(p)).collect();
    imgs.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
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
    /// How a folder without a labels file is read (images only).
    layout: Layout,
    /// Images the labels file does not list (images only).
    unlisted: Unlisted,
}

/// A source's items, and what the user should hear about how it was read.
struct Listing {
    entries: Vec<Entry>,
    notes: Vec<String>,
}

/// The files and folders directly in `dir` (hidden ones left out), sorted.
fn folder(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
        let p = e.map_err(io_err(format!("reading {}", dir.display())))?.path();
        if is_hidden(&p) {
            continue;
        }
        if p.is_dir() {
            dirs.push(p);
        } else {
            files.push(p);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// Lists a source's items: from a labels CSV (`item,label`) when there is one,
/// else by the folder's layout (loose images, unlabelled; or one folder per
/// class). Sequences: folders of frames, directly or in class folders.
fn list_items(src: &Source<'_>, classes: &[String], wnids: &[String]) -> Result<Listing> {
    let (root, field) = (&src.root, &src.field);
    if !root.is_dir() {
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: {} is not a folder", root.display())));
    }
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
    let mut listing = match (labels, src.sequences) {
        (Some(labels), _) => listed(src, &labels, classes, wnids)?,
        (None, true) => sequences(src, classes, wnids)?,
        (None, false) => by_layout(src, classes, wnids)?,
    };
    if let Some(limit) = src.limit {
        listing.entries.truncate(limit as usize);
    }
    if listing.entries.is_empty() {
        let holds = if src.sequences { "no sequences (folders of image frames)" } else { "no images (.png, .jpg, .jpeg, .webp, .tif, .tiff)" };
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: {} holds {holds}", root.display())));
    }
    if let Some(e) = listing.entries.iter().find(|e| e.paths.is_empty()) {
        return Err(ClientError::Spec(format!("invalid spec: `{field}.path`: sequence `{}` holds no frames", e.name)));
    }
    Ok(listing)
}

/// Items named by a labels file, and the images it leaves out handled as the
/// spec says.
fn listed(src: &Source<'_>, labels: &Path, classes: &[String], wnids: &[String]) -> Result<Listing> {
    let (root, field) = (&src.root, &src.field);
    let what = if src.sequences { "sequence" } else { "image" };
    let text = std::fs::read_to_string(labels).map_err(io_err(format!("reading {}", labels.display())))?;
    let mut entries = Vec::new();
    let mut first_on: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
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
            let header = if n == 0 {
                format!(" (a header, if this is one, is `{}`)", if src.sequences { "sequence,label" } else { "file,label" })
            } else {
                String::new()
            };
            return Err(ClientError::Spec(format!("{}:{}: {what} `{file}` does not exist{header}", labels.display(), n + 1)));
        }
        let name = file.trim_start_matches("./").to_string();
        if let Some(first) = first_on.insert(name.clone(), n + 1) {
            return Err(ClientError::Spec(format!(
                "{}:{}: {what} `{name}` is listed again (first on line {first}): list each {what} once, with one label",
                labels.display(),
                n + 1
            )));
        }
        let label = parse_label(label.trim_matches('"'), classes, wnids, n + 1, labels)?;
        let paths = if src.sequences { images_in(&path)? } else { vec![path] };
        entries.push(Entry { name, paths, label });
    }
    let labelled = entries.iter().filter(|e| e.label.is_some()).count();
    let mut notes = vec![format!("{}: {} {what}s, {} labelled", labels.display(), thousands(entries.len()), thousands(labelled))];
    if src.sequences {
        return Ok(Listing { entries, notes });
    }
    // Images beside the listed ones (loose, or one folder down) that it leaves out.
    let listed: std::collections::HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    let (dirs, files) = folder(root)?;
    let mut unlisted: Vec<(String, PathBuf)> = Vec::new();
    for d in dirs.iter().map(Some).chain([None]) {
        let inside = match d {
            Some(d) => folder(d)?.1,
            None => files.clone(),
        };
        for p in inside.into_iter().filter(|p| is_image(p)) {
            let name = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            if !listed.contains(&name) {
                unlisted.push((name, p));
            }
        }
    }
    if !unlisted.is_empty() {
        let names: Vec<String> = unlisted.iter().map(|u| u.0.clone()).collect();
        match src.unlisted {
            Unlisted::Refuse => {
                return Err(ClientError::Spec(format!(
                    "invalid spec: `{field}.labels`: {} lists {} images but {} holds {} more it does not list ({}): list them \
                     (an empty label marks an image unlabelled), or set `{field}.unlisted = \"skip\"` to leave them out \
                     or `\"unlabelled\"` to include them unlabelled",
                    labels.display(),
                    thousands(entries.len()),
                    root.display(),
                    thousands(unlisted.len()),
                    some_of(&names)
                )))
            }
            Unlisted::Skip => notes.push(format!("left out {} images the labels file does not list ({})", thousands(names.len()), some_of(&names))),
            Unlisted::Unlabelled => {
                notes.push(format!("included {} images the labels file does not list, unlabelled ({})", thousands(names.len()), some_of(&names)));
                entries.extend(unlisted.into_iter().map(|(name, p)| Entry { name, paths: vec![p], label: None }));
            }
        }
    }
    Ok(Listing { entries, notes })
}

/// Sequences without a labels file: folders of frames directly under the root
/// (unlabelled), or class folders holding them.
fn sequences(src: &Source<'_>, classes: &[String], wnids: &[String]) -> Result<Listing> {
    let (dirs, _) = folder(&src.root)?;
    let mut entries = Vec::new();
    if dirs.iter().any(|d| images_in(d).is_ok_and(|v| !v.is_empty())) {
        for d in dirs {
            entries.push(Entry { name: file_name(&d), paths: images_in(&d)?, label: None });
        }
    } else {
        for (i, d) in dirs.iter().enumerate() {
            let label = class_index(&file_name(d), classes, wnids).map(|x| x as i32).unwrap_or(i as i32);
            for seq in folder(d)?.0 {
                entries.push(Entry { name: format!("{}/{}", file_name(d), file_name(&seq)), paths: images_in(&seq)?, label: Some(label) });
            }
        }
    }
    Ok(Listing { entries, notes: vec![] })
}

/// Images without a labels file, by the folder's layout.
fn by_layout(src: &Source<'_>, classes: &[String], wnids: &[String]) -> Result<Listing> {
    let (root, field) = (&src.root, &src.field);
    let (dirs, files) = folder(root)?;
    let mut skipped: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for f in &files {
        match skip_reason(f) {
            None => images.push(f.clone()),
            Some(why) => skipped.push(format!("{} ({why})", file_name(f))),
        }
    }
    let dir_names: Vec<String> = dirs.iter().map(|d| file_name(d)).collect();
    let how = format!(
        "lay it out as loose images (unlabelled), as one folder per class named by a class name or id of the first model \
         (ImageNet's `n01440764`), or give a labels.csv (`file,label`); `{field}.layout = \"images\"` reads only the loose images, \
         `{field}.layout = \"classes\"` reads folders of other names as classes in sorted order (torchvision's ImageFolder)"
    );
    let layout = match src.layout {
        Layout::Auto if dirs.is_empty() => Layout::Images,
        Layout::Auto if images.is_empty() => {
            let strangers: Vec<String> = dir_names.iter().filter(|n| class_index(n, classes, wnids).is_none()).cloned().collect();
            if !strangers.is_empty() {
                return Err(ClientError::Spec(format!(
                    "invalid spec: `{field}.path`: {} holds folders that are not class names or ids of the model ({}): {how}",
                    root.display(),
                    some_of(&strangers)
                )));
            }
            Layout::Classes
        }
        Layout::Auto => {
            return Err(ClientError::Spec(format!(
                "invalid spec: `{field}.path`: {} holds both loose images ({}) and folders ({}), so it is unclear which are the dataset: {how}",
                root.display(),
                thousands(images.len()),
                some_of(&dir_names)
            )))
        }
        Layout::Classes if !images.is_empty() => {
            let names: Vec<String> = images.iter().map(|p| file_name(p)).collect();
            return Err(ClientError::Spec(format!(
                "invalid spec: `{field}.path`: {} holds loose images ({}) beside its class folders; with `layout = \"classes\"` \
                 every image must be in its class's folder",
                root.display(),
                some_of(&names)
            )));
        }
        other => other,
    };
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    match layout {
        Layout::Classes => {
            // A folder named by a class name or id of the model gets that class;
            // otherwise classes are the sorted folder names, indexed in that order.
            for (i, d) in dirs.iter().enumerate() {
                let cname = file_name(d);
                let label = class_index(&cname, classes, wnids).map(|x| x as i32).unwrap_or(i as i32);
                let mut inside = folder(d)?.1;
                inside.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
                for f in inside {
                    match skip_reason(&f) {
                        None => entries.push(Entry { name: format!("{cname}/{}", file_name(&f)), paths: vec![f], label: Some(label) }),
                        Some(why) => skipped.push(format!("{cname}/{} ({why})", file_name(&f))),
                    }
                }
            }
            notes.push(format!("{}: {} classes, {} images (one folder per class)", root.display(), thousands(dirs.len()), thousands(entries.len())));
        }
        _ => {
            entries = images.into_iter().map(|p| Entry { name: file_name(&p), paths: vec![p], label: None }).collect();
            notes.push(format!("{}: {} images, 0 labelled (loose images, no labels.csv)", root.display(), thousands(entries.len())));
            if !dirs.is_empty() {
                notes.push(format!("ignored {} folder(s) ({}): `{field}.layout` is \"images\"", dirs.len(), some_of(&dir_names)));
            }
        }
    }
    if !skipped.is_empty() {
        notes.push(format!("skipped {} file(s): {}", skipped.len(), some_of(&skipped)));
    }
    Ok(Listing { entries, notes })
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
pub async fn resolve(spec_path: &Path, store: &dyn ObjectStore) -> Result<Resolution> {
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
    /// Prices per device-hour by device kind for this sweep's estimated cost.
    pub prices: jagged_domain::cost::Prices,
}

/// A resolved spec.
#[derive(Debug)]
pub struct Resolution {
    /// The spec file's text.
    pub spec_toml: String,
    /// The sweep, its models and items in the object store.
    pub sweep: ResolvedSweep,
    /// How the dataset was read and what was left out, for the user
    /// (`data: 5 images, 0 labelled (loose images, no labels.csv)`).
    pub notes: Vec<String>,
}

/// [`resolve`] with command-line overrides applied to the spec first.
pub async fn resolve_with(spec_path: &Path, store: &dyn ObjectStore, over: &Overrides) -> Result<Resolution> {
    let text = std::fs::read_to_string(spec_path).map_err(io_err(format!("reading spec {}", spec_path.display())))?;
    let mut spec = SweepSpec::from_toml(&text).map_err(|e| ClientError::Spec(format!("{}: {e}", spec_path.display())))?;
    if let Some(d) = &over.dataset {
        let abs = std::fs::canonicalize(d).map_err(|e| ClientError::Spec(format!("--dataset {}: no such folder ({e})", d.display())))?;
        let limit = spec.dataset.as_ref().and_then(|x| x.limit);
        let (layout, unlisted) = spec.dataset.as_ref().map(|x| (x.layout, x.unlisted)).unwrap_or_default();
        spec.dataset = Some(jagged_domain::spec::DatasetSpec { path: abs.display().to_string(), labels: None, limit, layout, unlisted });
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
    let mut notes = Vec::new();
    let images = match &spec.dataset {
        Some(d) => {
            let src = Source {
                field: "dataset".into(),
                root: base.join(&d.path),
                labels: d.labels.as_deref(),
                limit: d.limit,
                sequences: false,
                layout: d.layout,
                unlisted: d.unlisted,
            };
            let listing = list_items(&src, &classes, &wnids)?;
            notes.extend(listing.notes);
            upload(store, listing.entries, None).await?
        }
        None => vec![],
    };
    let mut family_items = std::collections::BTreeMap::new();
    for (f, fam) in spec.families.iter_mut().enumerate() {
        if let Family::Sequence(jagged_domain::transform::Sequence { path, frames, labels, limit, .. }) = fam {
            let src = Source {
                field: format!("families[{f}]"),
                root: base.join(&*path),
                labels: labels.as_deref(),
                limit: *limit,
                sequences: true,
                layout: Layout::default(),
                unlisted: Unlisted::default(),
            };
            let listing = list_items(&src, &classes, &wnids)?;
            notes.extend(listing.notes);
            let entries = listing.entries;
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
    Ok(Resolution { spec_toml: text, sweep: resolved, notes })
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
