//! Result parts as other readers see them: DuckDB reads every column of every
//! row of parts small and large as the rows that were written.

use jagged_artifacts::{encode, LayerError, ResultRow};
use jagged_testkit::root;
use serde_json::{json, Value};

fn python() -> std::path::PathBuf {
    let p = root().join(".cache/jagged/venv/bin/python3");
    assert!(p.is_file(), "{} missing: run `just test` (it creates the test environment)", p.display());
    p
}

/// Rows of every shape: nulls, empty and long lists, probability vectors on
/// some rows, per-layer errors, non-ASCII names, large ids.
fn rows(n: i32, shard: i64) -> Vec<ResultRow> {
    (0..n)
        .map(|i| ResultRow {
            sweep_id: 7,
            shard_id: 9_000_000_000 + shard,
            attempt: 2,
            model: format!("model-{}", i % 3),
            family: "crop".into(),
            family_index: i % 2,
            image_index: i / 5,
            image_name: format!("dossier/é{i}.JPEG"),
            label: (i % 4 != 1).then_some(i % 1000),
            point: i,
            dx: i as f32 * 0.25 - 3.0,
            dy: -(i as f32) / 8.0,
            scale: 1.0 + (i % 3) as f32 / 4.0,
            angle: (i % 5) as f32 * 1.5,
            is_reference: i % 9 == 4,
            top1: (i * 7) % 1000,
            top5_class: (0..(i % 6)).map(|k| k * 11 + i).collect(),
            top5_prob: (0..(i % 6)).map(|k| 1.0 / (k + 2) as f32).collect(),
            p_label: (i % 4 != 1).then_some(i as f32 / 1024.0),
            p_ref_top1: 0.5,
            fwd_pairs: i % 3,
            fwd_top1_changes: i % 2,
            fwd_abs_diff: i as f64 / 3.0,
            fwd_top5_transitions: i % 2,
            fwd_top5_dist: i % 7,
            provider: "cpu".into(),
            precision: "fp32".into(),
            render: if i % 2 == 0 { "host" } else { "graph" }.into(),
            probs: (i % 3 == 1).then(|| (0..(i % 7)).map(|k| k as f32 / 7.0).collect()),
            layers: (i % 4 == 3)
                .then(|| vec![LayerError { node: "conv".into(), op: "Conv".into(), factor: 2, blurred: i % 8 == 3, error: Some(i as f64) }]),
        })
        .collect()
}

/// A row as DuckDB gives it, each float as the bits of its double.
fn expected(r: &ResultRow) -> Value {
    let f = |v: f32| json!((v as f64).to_bits() as i64);
    json!([
        r.sweep_id,
        r.shard_id,
        r.attempt,
        r.model,
        r.family,
        r.family_index,
        r.image_index,
        r.image_name,
        r.label,
        r.point,
        f(r.dx),
        f(r.dy),
        f(r.scale),
        f(r.angle),
        r.is_reference,
        r.top1,
        r.top5_class,
        r.top5_prob.iter().map(|&v| f(v)).collect::<Vec<_>>(),
        r.p_label.map(f),
        f(r.p_ref_top1),
        r.fwd_pairs,
        r.fwd_top1_changes,
        r.fwd_abs_diff.to_bits() as i64,
        r.fwd_top5_transitions,
        r.fwd_top5_dist,
        r.provider,
        r.precision,
        r.probs.as_ref().map(|p| p.iter().map(|&v| f(v)).collect::<Vec<_>>()),
        r.layers.as_ref().map(|l| serde_json::to_string(l).unwrap()),
        r.render,
    ])
}

#[test]
fn duckdb_reads_every_value_of_small_and_large_parts() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [1, 2, 5, 300, 1024, 1500];
    let parts: Vec<Vec<ResultRow>> = sizes.iter().enumerate().map(|(s, &n)| rows(n, s as i64)).collect();
    for (s, p) in parts.iter().enumerate() {
        std::fs::write(dir.path().join(format!("part-{s}.parquet")), encode(p).unwrap()).unwrap();
    }
    let out = std::process::Command::new(python()).arg(root().join("tests/parts_duckdb.py")).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "parts_duckdb.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = jagged_artifacts::schema().fields().iter().map(|f| f.name().clone()).collect();
    for (s, p) in parts.iter().enumerate() {
        let file = &got[format!("part-{s}.parquet")];
        assert_eq!(file["columns"], json!(names), "part {s}");
        let read = file["rows"].as_array().unwrap();
        assert_eq!(read.len(), p.len(), "part {s}");
        for (i, (a, b)) in read.iter().zip(p).enumerate() {
            // The layers column is JSON text: compare it parsed.
            let (mut a, mut b) = (a.clone(), expected(b));
            for v in [&mut a, &mut b] {
                if let Some(t) = v[28].as_str() {
                    v[28] = serde_json::from_str(t).unwrap();
                }
            }
            assert_eq!(a, b, "part {s} ({} rows), row {i}", p.len());
        }
    }
    assert_eq!(got["all"], json!(sizes.iter().sum::<i32>()));
}
