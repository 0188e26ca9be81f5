//! Test helpers: a migrated store on a private PostgreSQL cluster, the tiny model,
//! generated images and datasets, sweep factories, and paths to built artifacts.
#![deny(missing_docs)]

use jagged_domain::spec::{ImageRef, ResolvedModel, ResolvedSweep, SweepSpec};
use jagged_store::local::LocalPostgres;
use jagged_store::Store;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The `jagged` binary built by `cargo build -p jagged-cli` (which `just test` runs first).
pub fn jagged_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target profile folder");
    let bin = dir.join("jagged");
    assert!(bin.is_file(), "{} not found: run `cargo build -p jagged-cli` first (just test does)", bin.display());
    bin
}

/// Headless Chromium: `JAGGED_CHROMIUM`, else `chromium` or `chromium-browser` on
/// the PATH (Debian's `chromium` package; `.ci/run` installs it).
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("JAGGED_CHROMIUM") {
        return PathBuf::from(p);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!("headless Chromium not found: install it (apt-get install chromium) or set JAGGED_CHROMIUM");
}

/// Points `ORT_DYLIB_PATH` at the cached runtime when unset, and checks it exists.
pub fn ort() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        std::env::set_var("ORT_DYLIB_PATH", root().join(".cache/jagged/ort/libonnxruntime.so"));
    }
    let p = PathBuf::from(std::env::var_os("ORT_DYLIB_PATH").unwrap());
    assert!(p.exists(), "ONNX Runtime not found at {}: run `scripts/fetch.sh ort` (just test does)", p.display());
}

/// A private PostgreSQL cluster and a migrated store on it. Keep the cluster
/// alive as long as the store is used; dropping it stops the server.
pub async fn store() -> (LocalPostgres, Store) {
    let pg = LocalPostgres::start().expect("private postgres");
    let store = Store::connect(&pg.url(), 16).await.expect("connect");
    store.migrate().await.expect("migrate");
    (pg, store)
}

/// Writes the tiny model (`tiny_cnn.onnx` + card) into `dir`; returns the ONNX path.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("tiny_cnn.onnx");
    std::fs::write(&p, &m.bytes).unwrap();
    std::fs::write(p.with_extension("card.json"), serde_json::to_vec_pretty(&m.card).unwrap()).unwrap();
    p
}

/// A deterministic textured RGB PNG (smooth blobs plus edges), `w` x `h`.
pub fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let s = seed as f32;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let r = 128.0 + 100.0 * ((fx * 0.11 + s).sin() * (fy * 0.07 + 0.5 * s).cos());
        let g = 128.0 + 100.0 * ((fx * 0.05 - fy * 0.09 + s * 1.3).sin());
        let b = if (x / (4 + seed % 5) + y / 6).is_multiple_of(2) { 40.0 } else { 210.0 };
        image::Rgb([r as u8, g as u8, b as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Writes `n` generated images `img_<i>.png` with labels `i % classes` and a
/// `labels.csv`, plus any `extra` (name, bytes, label) files; returns the folder.
pub fn dataset(dir: &Path, n: u32, classes: u32, extra: &[(&str, &[u8], Option<i32>)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..n {
        let name = format!("img_{i}.png");
        std::fs::write(dir.join(&name), png(48 + 3 * i, 40 + 2 * i, i)).unwrap();
        csv += &format!("{name},{}\n", i % classes);
    }
    for (name, bytes, label) in extra {
        std::fs::write(dir.join(name), bytes).unwrap();
        csv += &format!("{name},{}\n", label.map(|l| l.to_string()).unwrap_or_default());
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    dir.to_path_buf()
}

/// A resolved sweep over the tiny model's card with fake object keys, for SQL
/// tests: `images` images, the given families (TOML tables), `shard_images` per shard.
pub fn resolved(images: usize, families: &str, shard_images: u32, max_attempts: u32) -> ResolvedSweep {
    let text = format!(
        "name = \"t\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n{families}\n[shard]\nimages = {shard_images}\nmax_attempts = {max_attempts}\n"
    );
    let spec = SweepSpec::from_toml(&text).expect("factory spec");
    let card = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default()).card;
    ResolvedSweep {
        spec,
        models: vec![ResolvedModel { name: "tiny_cnn".into(), key: "blobs/sha256/model".into(), card }],
        images: (0..images)
            .map(|i| ImageRef { name: format!("{i}.png"), key: format!("blobs/sha256/{i}"), label: Some(1), frames: vec![] })
            .collect(),
        family_items: Default::default(),
    }
}
