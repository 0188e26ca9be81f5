//! Robust radius by adaptive sweeps: a model and images built so that every
//! image's radius is known, searched ring by ring with early stop; the radii
//! come out exactly, only unchanged images go on to the next ring, and a worker
//! killed with SIGKILL mid-search changes nothing.

use jagged_domain::status::SweepState;
use jagged_local::LocalCluster;
use jagged_testkit::{ort, until};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Input side of the model; the central `MASK` x `MASK` square of the window
/// starts at `LO`.
const SIDE: u32 = 16;
const LO: i32 = 6;
const MASK: i32 = 4;
const MAX_RADIUS: u32 = 6;

/// A model that answers class 1 when a bright red pixel is inside the central
/// square of its window, else class 0: logits `[0.5, sum of the red channel over
/// the square]`, inputs scaled to 0..1.
fn window_model(dir: &Path) {
    use jagged_onnx::graph::{Attr, Graph};
    let n = (3 * SIDE * SIDE) as usize;
    let mut w = vec![0f32; 2 * n];
    for v in LO..LO + MASK {
        for u in LO..LO + MASK {
            w[n + (v as usize) * SIDE as usize + u as usize] = 1.0;
        }
    }
    let mut g = Graph::default();
    let wt = g.init("w", &[2, n as i64], w);
    let b = g.init("b", &[2], vec![0.5, 0.0]);
    let f = g.node("Flatten", &["input"], vec![("axis", Attr::Int(1))]);
    let y = g.node("Gemm", &[&f, &wt, &b], vec![("transB", Attr::Int(1))]);
    let bytes = g.finish("input", SIDE as i64, &y, "logits", 2);
    let mut card = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default()).card;
    card.name = "window".into();
    card.input_size = SIDE;
    card.num_classes = 2;
    card.classes = vec!["outside".into(), "inside".into()];
    card.normalize = jagged_domain::transform::Normalize { mean: [0.0; 3], std: [255.0; 3] };
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("models/window.onnx"), bytes).unwrap();
    std::fs::write(dir.join("models/window.card.json"), serde_json::to_vec(&card).unwrap()).unwrap();
}

/// Images of side `SIDE + 2 MAX_RADIUS` (the default resize: no resampling),
/// black with at most one red pixel at window position `(u, v)` of the
/// reference window; returns each image's name and known radius (`None`: its
/// top-1 never changes within `MAX_RADIUS`).
fn images(dir: &Path, copies: usize) -> Vec<(String, Option<u32>)> {
    let side = SIDE + 2 * MAX_RADIUS;
    // (pixel, radius): k columns right of the square needs a shift of k; a pixel
    // inside at (7, 7) leaves the square at a shift of 2, one at its corner at 1.
    /// Where the red pixel is (if anywhere), and the radius that gives.
    type Case = (Option<(i32, i32)>, Option<u32>);
    let mut cases: Vec<Case> = (1..=5).map(|k| (Some((LO + MASK - 1 + k, 7)), Some(k as u32))).collect();
    cases.push((Some((7, 7)), Some(2)));
    cases.push((Some((LO, LO)), Some(1)));
    cases.push((Some((7, LO - 3)), Some(3)));
    cases.push((Some((LO + MASK - 1 + 8, 7)), None));
    cases.push((None, None));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut out = Vec::new();
    for c in 0..copies {
        for (i, (pixel, radius)) in cases.iter().enumerate() {
            let mut img = image::RgbImage::new(side, side);
            if let Some((u, v)) = pixel {
                img.put_pixel((u + MAX_RADIUS as i32) as u32, (v + MAX_RADIUS as i32) as u32, image::Rgb([255, 0, 0]));
            }
            let name = format!("c{c}_{i:02}.png");
            img.save(dir.join("data").join(&name)).unwrap();
            out.push((name, *radius));
        }
    }
    out
}

fn spec(dir: &Path) {
    let spec = format!(
        "name = \"radius\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/window.onnx\"\n\
         [[families]]\nkind = \"radius\"\nmax_radius = {MAX_RADIUS}\n[shard]\nimages = 1\nmax_attempts = 1\n[run]\nbatch_size = 4\n"
    );
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
}

/// Every image's radius from the report, by name.
fn radii(report: &jagged_report::Report, names: &[String]) -> BTreeMap<String, Option<u32>> {
    report.radius[0].radii.iter().map(|&(i, r)| (names[i as usize].clone(), r)).collect()
}

/// Each (image, point) once: nothing run twice or lost to a killed worker.
fn once(rows: &[jagged_artifacts::ResultRow]) {
    let mut seen = HashSet::new();
    for r in rows {
        assert!(seen.insert((r.image_index, r.point)), "row {} of {} written twice", r.point, r.image_name);
    }
}

/// A folder with the model, `copies` of the images and the spec; the images'
/// names, sorted (their indices), and known radii by name.
fn setup(copies: usize) -> (tempfile::TempDir, Vec<String>, BTreeMap<String, Option<u32>>) {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    window_model(tmp.path());
    let known: BTreeMap<String, Option<u32>> = images(tmp.path(), copies).into_iter().collect();
    spec(tmp.path());
    (tmp, known.keys().cloned().collect(), known)
}

#[test]
fn radii_come_out_exactly_and_only_unchanged_images_search_on() {
    let (tmp, names, expected) = setup(1);
    let dir = tmp.path();
    let (rows, report) = jagged_testkit::sweep_rows(&dir.join("run"), &dir.join("spec.toml"));
    assert_eq!(radii(&report, &names), expected);
    once(&rows);
    // Image by image, the rings searched are those up to its radius (all rings
    // when censored): the early stop, point for point.
    for (name, radius) in &expected {
        let idx = names.iter().position(|n| n == name).unwrap() as i32;
        let last = radius.unwrap_or(MAX_RADIUS);
        let ring_rows = rows.iter().filter(|r| r.image_index == idx && !r.is_reference).count() as u32;
        assert_eq!(ring_rows, (1..=last).map(|r| 8 * r).sum::<u32>(), "{name}");
    }
    let t = &report.radius[0];
    assert_eq!(t.censored, 2);
    assert_eq!(t.images, 10);
    assert_eq!(t.distribution, vec![0, 2, 2, 2, 1, 1, 0]);
    assert_eq!(t.survival[1], Some(8.0 / 10.0));
    assert_eq!(t.median_label(), "3", "sorted 1 1 2 2 3 3 4 5 7 7: the lower median is 3");
    assert!(t.saved().unwrap() > 0.4, "{t:?}");
    let md = report.markdown();
    assert!(md.contains("## Robust radius") && md.contains("robust to 6 px"), "{md}");
}

#[test]
fn a_worker_killed_mid_search_changes_no_radius() {
    let (tmp, names, expected) = setup(4);
    let dir = tmp.path();
    let mut cluster = LocalCluster::start(jagged_testkit::cluster_options(&dir.join("run"), 2, 3_000)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    let id = rt.block_on(jagged_testkit::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default())).unwrap();
    // Ring 1 planned for all 40 images; follow-ups appear as rings commit.
    let s = rt.block_on(until(&cluster.url, id, "a few rings committed", |s| s.done >= 12));
    assert_eq!(s.state, SweepState::Running, "the search finished before the damage");
    cluster.workers[0].kill9();
    cluster.add_worker(2).unwrap();
    let done = rt.block_on(until(&cluster.url, id, "the search to finish", |s| s.state != SweepState::Running));
    assert_eq!(done.state, SweepState::Done, "{done:?}");
    assert!(done.total > 40, "follow-up rings were planned: {done:?}");
    let (rows, report) = rt.block_on(jagged_testkit::committed(&cluster, objects.as_ref(), id));
    cluster.stop();
    once(&rows);
    assert_eq!(report.sweep.done as u32, done.total, "every shard done once");
    assert_eq!(done.inferences_done, rows.len() as i64, "every planned inference is a row, once");
    assert_eq!(radii(&report, &names), expected);
}
