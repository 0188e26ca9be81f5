//! The protocol card: what a report measured, written as `protocol.json` and at
//! the top of `summary.md` and `report.html`. Two reports with the same card
//! (the same `fingerprint`) measured the same thing the same way; the card's
//! `notes` say when a report's own rows do not come from one protocol.

use jagged_domain::spec::{ImageRef, ResolvedSweep};
use jagged_store::Provenance;
use serde_json::{json, Value};
use sha2::Digest;

/// The card of a sweep's report: its models (content hash, input size,
/// normalisation, output, and the providers, precisions and ONNX Runtime
/// versions that computed them), its families (label and every parameter), its
/// dataset (image count, content hash, labelled images, the class subset) and
/// jagged's version; with a fingerprint over all of it.
pub fn card(resolved: &ResolvedSweep, provenance: &[Provenance]) -> Value {
    let spec = &resolved.spec;
    let mut notes = Vec::new();
    let models: Vec<Value> = resolved
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let runs: Vec<Value> = provenance
                .iter()
                .filter(|p| p.model_idx as usize == i)
                .map(|p| json!({"provider": p.provider, "precision": p.precision, "onnxruntime": p.runtime}))
                .collect();
            if runs.len() > 1 {
                let what: Vec<String> =
                    runs.iter().map(|r| format!("{}/{}/{}", r["provider"], r["precision"], r["onnxruntime"]).replace('"', "")).collect();
                notes.push(format!("model `{}` was computed by {} runtimes ({}): its rows mix them", m.name, runs.len(), what.join(", ")));
            }
            let mut v = json!({
                "name": m.name,
                "sha256": m.key.rsplit('/').next().unwrap_or(&m.key),
                "input_size": m.card.input_size,
                "normalize": {"mean": m.card.normalize.mean, "std": m.card.normalize.std},
                "output": m.card.output,
                "num_classes": m.card.num_classes,
                "untrained": m.card.untrained,
                "runs": runs,
            });
            if let Some(aa) = &m.card.antialiased {
                v["antialiased"] = json!(aa);
            }
            v
        })
        .collect();
    let families: Vec<Value> = spec
        .families
        .iter()
        .enumerate()
        .map(|(f, fam)| {
            let mut v = json!({"label": spec.family_label(f)});
            if let (Value::Object(out), Ok(Value::Object(params))) = (&mut v, serde_json::to_value(fam)) {
                out.extend(params);
            }
            if !resolved.family_items.is_empty() && resolved.family_items.contains_key(&(f as u32)) {
                v["items"] = items(resolved.items(f));
            }
            v
        })
        .collect();
    let mut card = json!({
        "jagged": env!("CARGO_PKG_VERSION"),
        "models": models,
        "families": families,
        "dataset": items(&resolved.images),
    });
    card["dataset"]["jpeg_decoder"] = json!(spec.run.jpeg_decoder.name());
    card["fingerprint"] = Value::String(fingerprint(&card));
    card["notes"] = json!(notes);
    card
}

/// A list of items: how many, their content hash (names, stored keys and
/// labels, in order), how many are labelled, and the classes they use.
fn items(list: &[ImageRef]) -> Value {
    let mut h = sha2::Sha256::new();
    for i in list {
        h.update(format!("{}\0{}\0{}\0{}\n", i.name, i.key, i.label.map(|l| l.to_string()).unwrap_or_default(), i.frames.join("\0")));
    }
    let mut classes: Vec<i32> = list.iter().filter_map(|i| i.label).collect();
    classes.sort_unstable();
    classes.dedup();
    json!({
        "images": list.len(),
        "sha256": hex::encode(h.finalize()),
        "labelled": list.iter().filter(|i| i.label.is_some()).count(),
        "classes": classes,
    })
}

/// SHA-256 of the card's canonical JSON (keys sorted, as serde_json's map
/// keeps them), without the fingerprint and the notes.
fn fingerprint(card: &Value) -> String {
    let mut c = card.clone();
    if let Value::Object(m) = &mut c {
        m.remove("fingerprint");
        m.remove("notes");
    }
    hex::encode(sha2::Sha256::digest(serde_json::to_vec(&c).expect("a JSON value serializes")))
}

/// The card in a few lines of Markdown, for the top of `summary.md`.
pub fn markdown(card: &Value) -> String {
    let mut out = format!("## Protocol\n\nFingerprint `{}` (jagged {}): reports with the same fingerprint measured the same thing; `protocol.json` has every parameter.\n\n", short(card), card["jagged"].as_str().unwrap_or(""));
    for m in card["models"].as_array().into_iter().flatten() {
        let runs: Vec<String> = m["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {} (ONNX Runtime {})",
                    r["provider"].as_str().unwrap_or(""),
                    r["precision"].as_str().unwrap_or(""),
                    r["onnxruntime"].as_str().unwrap_or("")
                )
            })
            .collect();
        let aa = match m.get("antialiased") {
            Some(a) => format!(
                " (BlurPool {0}x{0} written into `{1}`, sha256 {2}…, not retrained)",
                a["filter"],
                a["parent"].as_str().unwrap_or(""),
                a["parent_sha256"].as_str().unwrap_or("").chars().take(12).collect::<String>()
            ),
            None => String::new(),
        };
        out += &format!(
            "- model `{}`{aa}: sha256 {}…, input {} px, normalize mean {} std {}; {}\n",
            m["name"].as_str().unwrap_or(""),
            &m["sha256"].as_str().unwrap_or("")[..12.min(m["sha256"].as_str().unwrap_or("").len())],
            m["input_size"],
            m["normalize"]["mean"],
            m["normalize"]["std"],
            if runs.is_empty() { "not run yet".to_string() } else { runs.join("; ") }
        );
    }
    for f in card["families"].as_array().into_iter().flatten() {
        let mut params = f.as_object().cloned().unwrap_or_default();
        let label = params.remove("label").and_then(|l| l.as_str().map(String::from)).unwrap_or_default();
        params.remove("items");
        out += &format!("- family `{label}`: {}\n", Value::Object(params));
    }
    let d = &card["dataset"];
    out += &format!(
        "- dataset: {} images ({} labelled, {} classes), sha256 {}…, JPEG decoded by {}\n",
        d["images"],
        d["labelled"],
        d["classes"].as_array().map_or(0, |c| c.len()),
        &d["sha256"].as_str().unwrap_or("")[..12],
        d["jpeg_decoder"].as_str().unwrap_or("builtin")
    );
    for n in card["notes"].as_array().into_iter().flatten() {
        out += &format!("- **note**: {}\n", n.as_str().unwrap_or(""));
    }
    out + "\n"
}

/// The fingerprint's first 16 hex digits.
pub fn short(card: &Value) -> String {
    card["fingerprint"].as_str().unwrap_or("").chars().take(16).collect()
}
