use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{dataset, ort, submit, tiny_model, wait};
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
[[families]]
kind = "shear"
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
    /// Pairs and changes of labelled images right (and wrong) at the reference.
    right: (usize, usize),
    wrong: (usize, usize),
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
            "scale" | "rotate" | "shear" => {
                pts.sort_by(|a, b| if family == "scale" { a.scale.total_cmp(&b.scale) } else { a.angle.total_cmp(&b.angle) });
                for w in pts.windows(2) {
                    neighbours.push((w[0], w[1]));
                }
            }
            _ => {
                let at: BTreeMap<(i32, i32), &jagged_artifacts::ResultRow> = pts.iter().map(|r| ((r.dx as i32, r.dy as i32), *r)).collect();
                for (&(dx, dy), &r) in &at {
                    let next: Vec<(i32, i32)> = if family == "diagonal" { vec![(dx + 1, dy + 1)] } else { vec![(dx + step, dy), (dx, dy + step)] };
                    for n in next {
                        if let Some(&m) = at.get(&n) {
                            neighbours.push((r, m));
                        }
                    }
                }
            }
        }
        let reference = pts.iter().find(|r| r.dx == 0.0 && r.dy == 0.0 && r.scale == 1.0 && r.angle == 0.0).expect("reference point");
        let right = label.map(|l| first_argmax(&probs(reference)) == l);
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
            let changed = (c != first_argmax(&pb)) as usize;
            out.pairs += 1;
            out.changes += changed;
            match right {
                Some(true) => out.right = (out.right.0 + 1, out.right.1 + changed),
                Some(false) => out.wrong = (out.wrong.0 + 1, out.wrong.1 + changed),
                None => {}
            }
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (st, report, rows, report2) = run_e2e_sweep_twice(dir);
    check_every_family(&st, &report, &rows);
    assert_eq!(report.csv(), report2.csv(), "same spec, same numbers");
    check_the_report_folder(&report, &rows, dir);
}

/// The e2e spec over six good images and a broken one, through a coordinator
/// and two worker processes, then again with `--again`: the first sweep's
/// status, report and every row (with probabilities), and the second's report.
fn run_e2e_sweep_twice(
    dir: &std::path::Path,
) -> (jagged_domain::status::SweepStatus, jagged_report::Report, Vec<jagged_artifacts::ResultRow>, jagged_report::Report) {
    ort();
    tiny_model(&dir.join("models"));
    let corrupt: &[u8] = b"\x89PNG\r\n\x1a\nthis is not the rest of a png";
    dataset(&dir.join("data"), 6, 10, &[("broken.png", corrupt, Some(3))]);
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let opts = ClusterOptions {
        dir: dir.join("run"),
        workers: 2,
        // Every grid here but the shears (plain windows, circular shifts,
        // rotations) renders inside the model's graph, and shears on the host:
        // every number below is checked the same way either way.
        env: vec![("JAGGED_RENDER".into(), "graph".into())],
        ..Default::default()
    };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let st = wait(&cluster.url, id).await;
        let store = jagged_store::Store::connect(&cluster.postgres.url(), 4).await.unwrap();
        let report = jagged_report::build(&store, objects.as_ref(), id).await.unwrap();
        // Folding parts on one thread or many gives the same table.
        let serial = jagged_report::build_with(&store, objects.as_ref(), id, 1).await.unwrap();
        assert_eq!(serial.rows, report.rows);
        let mut rows = Vec::new();
        for o in store.outputs(id).await.unwrap() {
            rows.extend(jagged_artifacts::decode(jagged_artifacts::get(objects.as_ref(), &o.object_key).await.unwrap()).unwrap());
        }
        // Submitted again as is, the same sweep comes back and no work is added.
        let again = submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        assert_eq!(again, id, "a second submit of the same sweep returns the first");
        assert_eq!(store.sweeps().await.unwrap().len(), 1);
        // Run anew (`--again`): results must be identical (pure transforms, same ORT).
        let over = jagged_client::Overrides { again: true, ..Default::default() };
        let id2 = submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &over).await.unwrap();
        assert_ne!(id2, id);
        wait(&cluster.url, id2).await;
        let report2 = jagged_report::build(&store, objects.as_ref(), id2).await.unwrap();
        (st, report, rows, report2)
    });
    cluster.stop();
    result
}

/// Every family's rows (each (family, image, point) once, rendered where it can
/// be) and its table row against a straightforward recomputation from them.
fn check_every_family(st: &jagged_domain::status::SweepStatus, report: &jagged_report::Report, rows: &[jagged_artifacts::ResultRow]) {
    assert_eq!(st.state, SweepState::Done);
    assert_eq!((st.done, st.failed, st.total), (32, 0, 32), "8 families x 4 shards of 2 images");
    assert_eq!(st.failed_items, 8, "the corrupt image fails once per family");
    assert!(report.failures.iter().all(|f| f.image == "broken.png" && f.reason.contains("corrupt")), "{:?}", report.failures);

    // Row counts: 6 good images x grid points, each (family, image, point) exactly once.
    let points = [
        ("crop", 49usize, 1i32),
        ("embed", 25, 2),
        ("diagonal", 5, 1),
        ("circular", 25, 1),
        ("scale", 5, 0),
        ("random_pairs", 5, 0),
        ("rotate", 5, 0),
        ("shear", 5, 0),
    ];
    let mut seen = HashSet::new();
    for r in rows {
        assert!(seen.insert((r.family_index, r.image_index, r.point)), "duplicate row {:?}", (r.family_index, r.image_index, r.point));
        assert_ne!(r.image_name, "broken.png");
    }
    for (fi, (family, n, step)) in points.iter().enumerate() {
        let fam_rows: Vec<&jagged_artifacts::ResultRow> = rows.iter().filter(|r| r.family_index == fi as i32).collect();
        assert_eq!(fam_rows.len(), 6 * n, "{family}");
        let render = if *family == "shear" { "host" } else { "graph" };
        assert!(fam_rows.iter().all(|r| r.render == render), "{family} renders where it can");
        let re = recompute(&fam_rows, family, *step);
        let table = report.rows.iter().find(|t| t.family_index == fi).unwrap();
        assert_eq!(table.family, *family);
        let structure = table.structure.expect("read at submit");
        assert_eq!(
            (table.untrained, structure.factor, structure.blurred_ops, structure.subsampling_ops),
            (true, 4, 0, 2),
            "tiny CNN: two strided convs, no blur"
        );
        let t = &table.totals;
        assert_eq!((t.images as usize, t.inferences as usize, t.failed_items), (re.images, re.inferences, 1));
        let m = |name: &str| table.metric(name);
        close(m("acc1"), re.correct1 as f64 / re.labelled as f64);
        close(m("acc5"), re.correct5 as f64 / re.labelled as f64);
        close(m("p_top1_change"), re.changes as f64 / re.pairs as f64);
        close(m("mac"), re.abs / re.pairs as f64);
        close(m("jagged_fraction"), re.jagged as f64 / re.labelled as f64);
        close(m("mean_transitions"), re.transitions as f64 / re.labelled as f64);
        close(m("worst_acc"), re.worst as f64 / re.labelled as f64);
        let split = |(pairs, changes): (usize, usize)| (pairs > 0).then(|| changes as f64 / pairs as f64);
        assert_eq!(m("p_top1_change_correct").map(|v| (v * 1e12).round()), split(re.right).map(|v| (v * 1e12).round()), "{family}");
        assert_eq!(m("p_top1_change_wrong").map(|v| (v * 1e12).round()), split(re.wrong).map(|v| (v * 1e12).round()), "{family}");
        let ci = table.intervals.get("p_top1_change").expect("interval");
        assert!(ci.lo <= m("p_top1_change").unwrap() && m("p_top1_change").unwrap() <= ci.hi, "{family}: {ci:?}");
        if *family == "crop" {
            assert!(re.changes > 0, "the tiny strided CNN must change its prediction under some one-pixel shift");
        }
    }
}

/// The report folder: tables, a self-contained page, figures as SVG and PNG,
/// and the page as a browser shows it.
fn check_the_report_folder(report: &jagged_report::Report, rows: &[jagged_artifacts::ResultRow], dir: &std::path::Path) {
    let out = dir.join("report");
    report.write(&out).unwrap();
    for f in ["summary.csv", "summary.md", "failed_items.csv", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.matches("<svg").count() >= 10, "tables and inline figures");
    for stem in [
        "tiny_cnn__crop__heatmap",
        "tiny_cnn__crop__map",
        "tiny_cnn__scale__traces",
        "tiny_cnn__rotate__traces",
        "tiny_cnn__shear__traces",
        "bars_p_top1_change",
    ] {
        let svg = std::fs::read_to_string(out.join(format!("figures/{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{stem}");
        let png = image::open(out.join(format!("figures/{stem}.png"))).unwrap().to_rgb8();
        let colours: HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 8, "{stem}.png is blank ({} colours)", colours.len());
    }
    let shear = std::fs::read_to_string(out.join("figures/tiny_cnn__shear__traces.svg")).unwrap();
    assert!(shear.contains("shear angle (degrees)"), "the shear's traces run along its angle");
    let angles: std::collections::BTreeSet<i32> = rows.iter().filter(|r| r.family == "shear").map(|r| r.angle as i32).collect();
    assert_eq!(angles.into_iter().collect::<Vec<_>>(), vec![-10, -5, 0, 5, 10], "shear rows carry their angle");
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
    let consistency = 1.0 - rp.metric("p_top1_change").unwrap();
    assert!(report.csv().contains(&format!(",{consistency:.4},4,0/2")), "consistency column: {}", report.csv());
}

const SEQ_SPEC: &str = r#"
name = "sequences"
[[models]]
path = "models/tiny_cnn.onnx"
[[models]]
path = "models/tiny_b.onnx"
[[families]]
kind = "sequence"
path = "translate"
frames = 6
[[families]]
kind = "sequence"
path = "noise"
compare = "first"
[metrics]
baseline = "tiny_cnn"
[run]
keep_probs = true
batch_size = 5
"#;

/// ImageNet-P's top-5 distance, written from its definition: rank the classes of
/// each frame (1 = most probable, ties by index), take the first frame's top-5 in
/// order, and sum |position - min(rank in the second frame - 1, 5)|.
fn t5d(p: &[f32], q: &[f32]) -> u64 {
    let order = |v: &[f32]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).unwrap().then(a.cmp(&b)));
        idx
    };
    let (op, oq) = (order(p), order(q));
    (0..5).map(|k| (k as i64 - oq.iter().position(|&c| c == op[k]).unwrap().min(5) as i64).unsigned_abs()).sum()
}

/// A sweep of frame sequences only (no dataset): flip probability and top-5
/// distance recomputed from the raw probability vectors, mFR / mT5D against the
/// baseline model, and a short sequence and a corrupt frame as failed items.
#[test]
fn sequences_give_flip_rates_and_normalised_rates() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sequence_inputs(dir);
    std::fs::write(dir.join("spec.toml"), SEQ_SPEC).unwrap();

    let opts = ClusterOptions { dir: dir.join("run"), workers: 2, ..Default::default() };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (st, report, rows) = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let st = wait(&cluster.url, id).await;
        let store = jagged_store::Store::connect(&cluster.postgres.url(), 4).await.unwrap();
        let report = jagged_report::build(&store, objects.as_ref(), id).await.unwrap();
        let mut rows = Vec::new();
        for o in store.outputs(id).await.unwrap() {
            rows.extend(jagged_artifacts::decode(jagged_artifacts::get(objects.as_ref(), &o.object_key).await.unwrap()).unwrap());
        }
        (st, report, rows)
    });
    cluster.stop();
    assert_eq!(st.state, SweepState::Done);
    let mut failures: Vec<String> = report.failures.iter().map(|f| format!("{}|{}|{}|{}", f.model, f.family, f.image, f.reason)).collect();
    failures.sort();
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(failures[0].starts_with("tiny_b|sequence|v2|frame 2:"), "{failures:?}");
    assert!(failures[1].starts_with("tiny_b|sequence|v4|the sequence has 4 frames; the family needs 6"), "{failures:?}");
    assert!(failures[2].starts_with("tiny_cnn|sequence|v2|frame 2:"), "{failures:?}");

    let fp_t5d = check_flip_rates(&report, &rows);
    assert!(fp_t5d.values().any(|v| v.0 > 0.0 && v.1 > 0.0), "the sequences must move the predictions: {fp_t5d:?}");
    let table = report.normalised.as_ref().expect("baseline given");
    assert_eq!(table.baseline, "tiny_cnn");
    assert_eq!(table.families, vec!["sequence:translate", "sequence:noise"]);
    for row in &table.models {
        let (model, n) = (&row.model, &row.ratios);
        let mut frs = Vec::new();
        for fam in 0..2 {
            let (m, b) = (fp_t5d[&(model.clone(), fam)], fp_t5d[&("tiny_cnn".to_string(), fam)]);
            if b.0 > 0.0 {
                frs.push(m.0 / b.0);
                close(n.fr[fam as usize], m.0 / b.0);
            } else {
                assert_eq!(n.fr[fam as usize], None);
            }
        }
        close(n.mfr, frs.iter().sum::<f64>() / frs.len() as f64);
        if model == "tiny_cnn" {
            close(n.mfr, 1.0);
        }
    }
    let out = dir.join("report");
    report.write(&out).unwrap();
    let csv = std::fs::read_to_string(out.join("normalised.csv")).unwrap();
    assert!(csv.starts_with("model,mFR,mT5D,FR sequence:translate,FR sequence:noise,"), "{csv}");
    assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("relative to tiny_cnn"));
    assert!(out.join("figures/tiny_b__sequence-translate__traces.svg").is_file());
}

/// Two tiny models and two folders of sequences: `translate` (4 sequences of
/// 7 frames sliding over a picture, of which 6 are used, and one of 4 frames)
/// and `noise` (3 sequences of 5 frames, one with a corrupt frame), labelled by
/// CSV, frames named 1..n without padding.
fn sequence_inputs(dir: &std::path::Path) {
    tiny_model(&dir.join("models"));
    let b = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { seed: 11, name: "tiny_b".into(), ..Default::default() });
    std::fs::write(dir.join("models/tiny_b.onnx"), &b.bytes).unwrap();
    std::fs::write(dir.join("models/tiny_b.card.json"), serde_json::to_vec(&b.card).unwrap()).unwrap();
    // translate: 4 sequences of 7 frames sliding over a picture (6 used), one of 4 frames;
    // noise: 3 sequences of 5 frames, one with a corrupt frame. ImageFolder-free,
    // labelled by CSV; frames named 1..n without padding.
    for (set, n_seq, n_frames) in [("translate", 5u32, 7u32), ("noise", 3, 5)] {
        let mut labels = String::from("sequence,label\n");
        for i in 0..n_seq {
            let seq = dir.join(format!("{set}/v{i}"));
            std::fs::create_dir_all(&seq).unwrap();
            let big = image::load_from_memory(&jagged_testkit::png(60, 60, 30 + i)).unwrap().to_rgb8();
            let frames = if set == "translate" && i == 4 { 4 } else { n_frames };
            for k in 0..frames {
                let mut f = image::imageops::crop_imm(&big, if set == "translate" { 3 * k } else { 8 }, 8, 40, 40).to_image();
                if set == "noise" {
                    f.pixels_mut()
                        .enumerate()
                        .for_each(|(j, p)| p.0[(j + k as usize) % 3] = p.0[(j + k as usize) % 3].wrapping_add((17 * k * (j as u32 % 7)) as u8));
                }
                f.save(seq.join(format!("{}.png", k + 1))).unwrap();
            }
            labels += &format!("v{i},{}\n", i % 10);
        }
        std::fs::write(dir.join(format!("{set}/labels.csv")), labels).unwrap();
    }
    std::fs::write(dir.join("noise/v2/3.png"), b"not a png").unwrap();
}

/// Each (model, family)'s flip probability and top-5 distance, recomputed
/// from the rows (per-sequence shares, averaged) and checked against the
/// report's: the recomputed values by (model, family).
fn check_flip_rates(report: &jagged_report::Report, rows: &[jagged_artifacts::ResultRow]) -> BTreeMap<(String, i32), (f64, f64)> {
    let mut fp_t5d: BTreeMap<(String, i32), (f64, f64)> = BTreeMap::new();
    for ((model, fam), (frames, expect_seqs)) in
        [(("tiny_cnn", 0), (6usize, 4usize)), (("tiny_cnn", 1), (5, 2)), (("tiny_b", 0), (6, 4)), (("tiny_b", 1), (5, 2))]
    {
        let mut by_seq: BTreeMap<i32, Vec<&jagged_artifacts::ResultRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.model == model && r.family_index == fam) {
            by_seq.entry(r.image_index).or_default().push(r);
        }
        assert_eq!(by_seq.len(), expect_seqs);
        let (mut fp, mut td) = (0.0, 0.0);
        for pts in by_seq.values_mut() {
            pts.sort_by_key(|r| r.point);
            assert_eq!(pts.len(), frames);
            let p: Vec<Vec<f32>> = pts.iter().map(|r| r.probs.clone().unwrap()).collect();
            let pairs: Vec<(usize, usize)> =
                if fam == 0 { (0..frames - 1).map(|k| (k, k + 1)).collect() } else { (1..frames).map(|k| (0, k)).collect() };
            let flips = pairs.iter().filter(|&&(a, b)| first_argmax(&p[a]) != first_argmax(&p[b])).count();
            let dist: u64 = pairs.iter().map(|&(a, b)| t5d(&p[a], &p[b])).sum();
            fp += flips as f64 / pairs.len() as f64;
            td += dist as f64 / pairs.len() as f64;
        }
        let n = by_seq.len() as f64;
        let row = report.rows.iter().find(|t| t.model == model && t.family_index == fam as usize).unwrap();
        close(row.metric("flip_prob"), fp / n);
        close(row.metric("top5_dist"), td / n);
        assert_eq!(row.family_label, if fam == 0 { "sequence:translate" } else { "sequence:noise" });
        fp_t5d.insert((model.to_string(), fam), (fp / n, td / n));
    }
    fp_t5d
}

/// Poison work: a model that cannot load (it uses an operator this ONNX Runtime
/// does not have; its graph is otherwise well formed, so submit accepts it)
/// fails each of its shards on every attempt; they are retried `max_attempts`
/// times with backoff, then marked failed with the error in `sweep status` and
/// the report, while the good model's shards complete; the sweep ends `failed`.
#[test]
fn poison_shards_fail_after_bounded_retries_and_the_rest_completes() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = tiny_model(&dir.join("models"));
    use prost::Message;
    let mut proto = jagged_onnx::pb::ModelProto::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    proto.graph.as_mut().unwrap().node[0].op_type = Some("JaggedNoSuchOperator".into());
    std::fs::write(dir.join("models/broken.onnx"), proto.encode_to_vec()).unwrap();
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(model.with_extension("card.json")).unwrap()).unwrap();
    card["name"] = "broken".into();
    std::fs::write(dir.join("models/broken.card.json"), serde_json::to_vec(&card).unwrap()).unwrap();
    dataset(&dir.join("data"), 4, 10, &[]);
    let spec =
        "name = \"poison\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n[[models]]\npath = \"models/broken.onnx\"\n\
                [[families]]\nkind = \"diagonal\"\nsteps = 3\n[shard]\nimages = 2\nmax_attempts = 3\n";
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let opts = ClusterOptions { dir: dir.join("run"), workers: 2, ..Default::default() };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (st, report, attempts) = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let st = wait(&cluster.url, id).await;
        let store = jagged_store::Store::connect(&cluster.postgres.url(), 2).await.unwrap();
        let attempts: Vec<(i32, i32, String)> = sqlx::query_as("select model_idx, attempt, state from shards where sweep_id = $1 order by id")
            .bind(id)
            .fetch_all(&crate::util::db(&cluster.postgres.url()).await)
            .await
            .unwrap();
        (st, jagged_report::build(&store, objects.as_ref(), id).await.unwrap(), attempts)
    });
    cluster.stop();
    assert_eq!(st.state, SweepState::Failed);
    assert_eq!((st.total, st.done, st.failed), (4, 2, 2), "{st:?}");
    assert_eq!(st.errors.len(), 2);
    assert!(st.errors.iter().all(|e| e.error.contains("broken") && e.error.contains("does not load")), "{:?}", st.errors);
    for (model, attempt, state) in &attempts {
        match model {
            0 => assert_eq!((attempt, state.as_str()), (&1, "done")),
            _ => assert_eq!((attempt, state.as_str()), (&3, "failed"), "retried up to max_attempts, then failed"),
        }
    }
    let good = report.rows.iter().find(|r| r.model == "tiny_cnn").unwrap();
    assert_eq!(good.totals.images, 4);
    assert_eq!(report.failures.iter().filter(|f| f.model == "broken" && f.reason.contains("does not load")).count(), 4, "{:?}", report.failures);
}
