use jagged_testkit::{ort, png, root, tiny_model};

const SPEC: &str = r#"
name = "crosscheck"
[dataset]
path = "data"
[[models]]
path = "models/tiny_cnn.onnx"
[[families]]
kind = "crop"
max_shift = 4
resize = 40
[[families]]
kind = "diagonal"
steps = 4
resize = 40
[[families]]
kind = "circular"
max_shift = 3
resize = 40
[[families]]
kind = "sequence"
path = "seqs"
stride = 2
[[families]]
kind = "crop"
max_shift = 2
step = 0.5
resize = 40
"#;

const FAMILIES: &str = r#"[{"kind": "crop", "max_shift": 4}, {"kind": "diagonal", "steps": 4}, {"kind": "circular", "max_shift": 3}, {"kind": "sequence", "path": "SEQS", "stride": 2}, {"kind": "crop", "max_shift": 2, "step": 0.5}]"#;

/// The Python interpreter of the test virtual environment (`just test` makes it
/// with numpy, Pillow and onnxruntime).
fn python() -> std::path::PathBuf {
    let p = root().join(".cache/jagged/venv/bin/python3");
    assert!(p.is_file(), "{} missing: run `just test` (it creates the cross-check environment)", p.display());
    p
}

/// An independent straightforward computation (numpy, Pillow, onnxruntime in
/// `tests/crosscheck.py`) gives the same per-point results as a sweep through the
/// whole system: argmax, p(label) and every forward-pair metric.
#[test]
fn python_recomputation_matches_every_row() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = tiny_model(&dir.join("models"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..4u32 {
        // 40x40: the resize to short side 40 is the identity, so no resampling.
        std::fs::write(dir.join(format!("data/i{i}.png")), png(40, 40, i + 3)).unwrap();
        csv += &format!("i{i}.png,{}\n", i * 3 % 10);
    }
    std::fs::write(dir.join("data/labels.csv"), csv).unwrap();
    // Three sequences of 32x32 frames (the input size: no resampling), a window
    // sliding over a larger picture, named f1..f12 so that only natural order is right.
    let mut labels = String::from("sequence,label\n");
    for (i, n) in [(0u32, 12u32), (1, 12), (2, 11)] {
        let seq = dir.join(format!("seqs/s{i}"));
        std::fs::create_dir_all(&seq).unwrap();
        let big = image::load_from_memory(&png(56, 56, 20 + i)).unwrap().to_rgb8();
        for k in 0..n {
            let frame = image::imageops::crop_imm(&big, 2 * k, k, 32, 32).to_image();
            frame.save(seq.join(format!("f{}.png", k + 1))).unwrap();
        }
        labels += &format!("s{i},{}\n", (i * 4) % 10);
    }
    std::fs::write(dir.join("seqs/labels.csv"), labels).unwrap();
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
    std::fs::write(dir.join("families.json"), FAMILIES.replace("SEQS", &dir.join("seqs").display().to_string())).unwrap();

    let out = std::process::Command::new(python())
        .arg(root().join("tests/crosscheck.py"))
        .arg(&model)
        .arg(model.with_extension("card.json"))
        .arg(dir.join("data"))
        .arg(dir.join("families.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "crosscheck.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let python: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_value(python["rows"].clone()).unwrap();

    // Rendered in the graph (every family here can be), so the Python check
    // covers that rendering.
    let (rows, report) = jagged_testkit::sweep_rows_with(&dir.join("run"), &dir.join("spec.toml"), &[("JAGGED_RENDER", "graph")]);
    for r in &rows {
        assert_eq!(r.render, "graph", "{} renders in the graph", r.family);
    }

    assert_eq!(rows.len(), expected.len(), "one row per (family, image, point)");
    for r in &rows {
        let key = if r.family == "sequence" {
            format!("sequence/{}/{}", r.image_name, r.point)
        } else {
            format!("{}{}/{}/{}/{}", r.family, r.family_index, r.image_name, r.dx, r.dy)
        };
        let e = expected.get(&key).unwrap_or_else(|| panic!("python has no row {key}"));
        let e = e.as_array().unwrap();
        assert_eq!(r.top1 as i64, e[0].as_i64().unwrap(), "{key}: argmax");
        let pl = e[1].as_f64().unwrap();
        assert!((r.p_label.unwrap() as f64 - pl).abs() < 1e-5, "{key}: p(label) {} vs {pl}", r.p_label.unwrap());
        assert_eq!(r.fwd_pairs as i64, e[2].as_i64().unwrap(), "{key}: pairs");
        assert_eq!(r.fwd_top1_changes as i64, e[3].as_i64().unwrap(), "{key}: top-1 changes");
        assert!((r.fwd_abs_diff - e[4].as_f64().unwrap()).abs() < 1e-5, "{key}: |diff| {} vs {}", r.fwd_abs_diff, e[4]);
        assert_eq!(r.fwd_top5_transitions as i64, e[5].as_i64().unwrap(), "{key}: top-5 transitions");
        assert_eq!(r.fwd_top5_dist as i64, e[6].as_i64().unwrap(), "{key}: top-5 distance");
    }
    // Sequences: 11 frames each (the shortest sequence), pairs (k, k + 2).
    assert_eq!(rows.iter().filter(|r| r.family == "sequence").count(), 3 * 11);
    assert!(rows.iter().any(|r| r.fwd_top5_dist > 0), "the check must cover changing rankings");
    assert!(rows.iter().any(|r| r.fwd_top1_changes > 0), "the check must cover changing predictions");

    // Every metric of the table, per family, as the Python script computes it
    // from its own per-image results (a metric it lacks fails here).
    for row in &report.rows {
        let theirs = &python["summary"][row.family_index.to_string()];
        for m in jagged_domain::metrics::METRICS {
            let Some(v) = theirs.get(m.name) else { panic!("tests/crosscheck.py computes no `{}`", m.name) };
            let ours = row.metric(m.name);
            match (ours, v.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{} {}: ours {a}, python {b}", row.family_label, m.name),
                (a, b) => assert!(a.is_none() && b.is_none(), "{} {}: ours {a:?}, python {b:?}", row.family_label, m.name),
            }
        }
    }
}
