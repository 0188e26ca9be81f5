use jagged_testkit::{dataset, jagged_bin, tiny_model};
use std::process::Command;

/// Runs `jagged sweep submit` against an unreachable coordinator: spec errors must
/// be reported before any connection is attempted.
fn submit(dir: &std::path::Path, spec: &str) -> String {
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = Command::new(jagged_bin())
        .args(["sweep", "submit"])
        .arg(dir.join("spec.toml"))
        .args(["--coordinator", "http://127.0.0.1:9", "--store"])
        .arg(dir.join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BASE: &str = "name = \"bad\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n";

#[test]
fn unknown_family_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"wobble\"\n"));
    assert!(err.contains("wobble") && err.contains("crop") && err.contains("families"), "{err}");
}

#[test]
fn missing_model_file_is_refused_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 2, 10, &[]);
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("models[0].path") && err.contains("tiny_cnn.onnx") && err.contains("does not exist"), "{err}");
}

#[test]
fn grid_too_large_for_the_model_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(&tmp.path().join("data"), 2, 10, &[]);
    tiny_model(&tmp.path().join("models"));
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"embed\"\nsize = 30\nmax_shift = 4\n"));
    assert!(err.contains("families[0].max_shift") && err.contains("tiny_cnn"), "{err}");
}

#[test]
fn missing_dataset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_model(&tmp.path().join("models"));
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("dataset.path") && err.contains("is not a folder"), "{err}");
}

#[test]
fn label_outside_the_model_classes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_model(&tmp.path().join("models"));
    let png = jagged_testkit::png(40, 40, 1);
    dataset(&tmp.path().join("data"), 1, 10, &[("x.png", &png, Some(10))]);
    let err = submit(tmp.path(), &format!("{BASE}[[families]]\nkind = \"diagonal\"\n"));
    assert!(err.contains("dataset.labels") && err.contains("x.png"), "{err}");
}
