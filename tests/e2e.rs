use jagged_cli::cluster::{ClusterOptions, LocalCluster};
use jagged_cli::sweep;
use jagged_testkit::{dataset, jagged_bin, ort, tiny_model};
use std::collections::{BTreeMap, HashSet};

const SPEC: &str = r#"
name = "e2e"
[dataset]
path = "data"
[[models]]
path = "models/tiny_cnn.onnx"
[[families]]
kind = "crop"
max_shift = 3
[[families]]
kind = "embed"
size = 16
max_shift = 4
step = 2
background = "mean"
[[families]]
kind = "diagonal"
steps = 4
[[families]]
kind = "circular"
max_shift = 2
[[families]]
kind = "scale"
from = 0.5
to = 1.5
step = 0.25
[[families]]
kind = "random_pairs"
pairs = 2
seed = 3
[[families]]
kind = "rotate"
from = -10.0
to = 10.0
step = 5.0
[shard]
images = 2
[run]
batch_size = 8
keep_probs = true
"#;

/// Straightforward recomputation of one (model, family) from raw rows with full
/// probability vectors, written independently of the domain code.
#[derive(Debug, Default)]
struct Recomputed {
    images: usize,
    inferences: usize,
    labelled: usize,
    correct1: usize,
    correct5: usize,
    pairs: usize,
    changes: usize,
    abs: f64,
    transitions: usize,
    jagged: usize,
    worst: usize,
}

fn first_argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for i in 1..p.len() {
        if p[i] > p[best] {
            best = i;
        }
    }
    best
}

fn top5(p: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap().then(a.cmp(&b)));
    idx.truncate(5);
    idx
}

fn recompute(rows: &[&jagged_artifacts::ResultRow], family: &str, step: i32) -> Recomputed {
    let mut by_image: BTreeMap<i32, Vec<&jagged_artifacts::ResultRow>> = BTreeMap::new();
    for r in rows {
        by_image.entry(r.image_index).or_default().push(r);
    }
    let mut out = Recomputed::default();
    for pts in by_image.values_mut() {
        out.images += 1;
        out.inferences += pts.len();
        let label = pts[0].label.map(|l| l as usize);
        let probs = |r: &jagged_artifacts::ResultRow| r.probs.clone().expect("keep_probs");
        // Neighbours from the parameters themselves.
        let mut neighbours = Vec::new();
        match family {
            "random_pairs" => {
                pts.sort_by_key(|r| r.point);
                neighbours.push((pts[1], pts[2]));
                neighbours.push((pts[3], pts[4]));
            }
            "scale" | "rotate" => {
                pts.sort_by(|a, b| if family == "scale" { a.scale.total_cmp(&b.scale) } else { a.angle.total_cmp(&b.angle) });
                for w in pts.windows(2) {
                    neighbours.push((w[0], w[1]));
                }
            }
            _ => {
                let at: BTreeMap<(i32, i32), &jagged_artifacts::ResultRow> = pts.iter().map(|r| ((r.dx, r.dy), *r)).collect();
                for (&(dx, dy), &r) in &at {
                    let next: Vec<(i32, i32)> =
                        if family == "diagonal" { vec![(dx + 1, dy + 1)] } else { vec![(dx + step, dy), (dx, dy + step)] };
                    for n in next {
                        if let Some(&m) = at.get(&n) {
                            neighbours.push((r, m));
                        }
                    }
                }
            }
        }
        let reference = pts.iter().find(|r| r.dx == 0 && r.dy == 0 && r.scale == 1.0 && r.angle == 0.0).expect("reference point");
        if let Some(l) = label {
            out.labelled += 1;
            let r = probs(reference);
            out.correct1 += (first_argmax(&r) == l) as usize;
            out.correct5 += top5(&r).contains(&l) as usize;
        }
        let mut t = 0;
        for (a, b) in neighbours {
            let (pa, pb) = (probs(a), probs(b));
            let c = first_argmax(&pa);
            out.pairs += 1;
            out.changes += (c != first_argmax(&pb)) as usize;
            out.abs += (pa[c] as f64 - pb[c] as f64).abs();
            if let Some(l) = label {
                t += (top5(&pa).contains(&l) != top5(&pb).contains(&l)) as usize;
            }
        }
        if let Some(l) = label {
            out.transitions += t;
            out.jagged += (t > 0) as usize;
            out.worst += pts.iter().all(|r| first_argmax(&probs(r)) == l) as usize;
        }
    }
    out
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("metric present");
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn full_sweep_through_coordinator_and_two_worker_processes() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_model(&dir.join("models"));
    let corrupt: &[u8] = b"\x89PNG\r\n\x1a\nthis is not the rest of a png";
    dataset(&dir.join("data"), 6, 10, &[("broken.png", corrupt, Some(3))]);
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let opts = ClusterOptions { bin: jagged_bin(), dir: dir.join("run"), workers: 2, threads: 1, lease_ms: 10_000, heartbeat_ms: 500 };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = sweep::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref()).await.unwrap();
        let st = sweep::wait(&cluster.url, id).await.unwrap();
        let store = jagged_store::Store::connect(&cluster.postgres.url(), 4).await.unwrap();
        let report = jagged_report::build(&store, objects.as_ref(), id).await.unwrap();
        let mut rows = Vec::new();
        for o in store.outputs(id).await.unwrap() {
            rows.extend(jagged_artifacts::decode(jagged_artifacts::get(objects.as_ref(), &o.object_key).await.unwrap()).unwrap());
        }
        // The same spec again: results must be identical (pure transforms, same ORT).
        let id2 = sweep::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref()).await.unwrap();
        sweep::wait(&cluster.url, id2).await.unwrap();
        let report2 = jagged_report::build(&store, objects.as_ref(), id2).await.unwrap();
        (st, report, rows, report2)
    });
    cluster.stop();
    let (st, report, rows, report2) = result;

    assert_eq!(st.state, "done");
    assert_eq!((st.done, st.failed, st.total), (28, 0, 28), "7 families x 4 shards of 2 images");
    assert_eq!(st.failed_items, 7, "the corrupt image fails once per family");
    assert!(report.failures.iter().all(|f| f.2 == "broken.png" && f.3.contains("corrupt")), "{:?}", report.failures);

    // Row counts: 6 good images x grid points, each (family, image, point) exactly once.
    let points = [("crop", 49usize, 1i32), ("embed", 25, 2), ("diagonal", 5, 1), ("circular", 25, 1), ("scale", 5, 0), ("random_pairs", 5, 0), ("rotate", 5, 0)];
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(seen.insert((r.family_index, r.image_index, r.point)), "duplicate row {:?}", (r.family_index, r.image_index, r.point));
        assert_ne!(r.image_name, "broken.png");
    }
    for (fi, (family, n, step)) in points.iter().enumerate() {
        let fam_rows: Vec<&jagged_artifacts::ResultRow> = rows.iter().filter(|r| r.family_index == fi as i32).collect();
        assert_eq!(fam_rows.len(), 6 * n, "{family}");
        let re = recompute(&fam_rows, family, *step);
        let table = report.rows.iter().find(|t| t.family_index == fi).unwrap();
        assert_eq!(table.family, *family);
        assert_eq!((table.untrained, table.subsampling, table.blurred), (true, 4, (0, 2)), "tiny CNN: two strided convs, no blur");
        let m = &table.metrics;
        assert_eq!((m.images as usize, m.inferences as usize, m.failed_items), (re.images, re.inferences, 1));
        close(m.acc1, re.correct1 as f64 / re.labelled as f64);
        close(m.acc5, re.correct5 as f64 / re.labelled as f64);
        close(m.p_top1_change, re.changes as f64 / re.pairs as f64);
        close(m.mac, re.abs / re.pairs as f64);
        close(m.jagged_fraction, re.jagged as f64 / re.labelled as f64);
        close(m.mean_transitions, re.transitions as f64 / re.labelled as f64);
        close(m.worst_of_grid_acc, re.worst as f64 / re.labelled as f64);
        let ci = table.intervals.p_top1_change.expect("interval");
        assert!(ci.lo <= m.p_top1_change.unwrap() && m.p_top1_change.unwrap() <= ci.hi, "{family}: {ci:?}");
        if *family == "crop" {
            assert!(re.changes > 0, "the tiny strided CNN must change its prediction under some one-pixel shift");
        }
    }
    assert_eq!(report.csv(), report2.csv(), "same spec, same numbers");

    // The report folder: tables, a self-contained page, figures as SVG and PNG.
    let out = dir.join("report");
    report.write(&out).unwrap();
    for f in ["summary.csv", "summary.md", "failed_items.csv", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.matches("<svg").count() >= 10, "tables and inline figures");
    for stem in ["tiny_cnn__crop__heatmap", "tiny_cnn__crop__map", "tiny_cnn__scale__traces", "tiny_cnn__rotate__traces", "bars_p_top1_change"] {
        let svg = std::fs::read_to_string(out.join(format!("figures/{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{stem}");
        let png = image::open(out.join(format!("figures/{stem}.png"))).unwrap().to_rgb8();
        let colours: HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 8, "{stem}.png is blank ({} colours)", colours.len());
    }
    // The page as a browser shows it: headless Chromium takes a screenshot.
    let shot = out.join("screenshot.png");
    let profile = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(jagged_testkit::chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1280,1400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() && shot.is_file(), "chromium could not render report.html");
    let page = image::open(&shot).unwrap().to_rgb8();
    let colours: HashSet<[u8; 3]> = page.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the rendered report is blank ({} colours)", colours.len());
    assert!(report.csv().contains("tiny_cnn (untrained),crop,"), "{}", report.csv());
    let rp = report.rows.iter().find(|t| t.family == "random_pairs").unwrap();
    let consistency = 1.0 - rp.metrics.p_top1_change.unwrap();
    assert!(report.csv().contains(&format!(",{consistency:.4},4,0/2")), "consistency column: {}", report.csv());
}
