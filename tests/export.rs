//! `scripts/export-torch.py` with PyTorch installed (`scripts/fetch.sh torch`):
//! untrained torchvision and timm models export with their cards, ONNX Runtime
//! agrees with PyTorch, and the printed `[[models]]` entry, pasted into a spec,
//! runs in a sweep.

use jagged_testkit::{ort, root};

/// Runs the export script for `model` (untrained) into `out`; returns its
/// stdout (the `[[models]]` entry) after checking what it reports.
fn export(model: &str, out: &std::path::Path) -> String {
    let python = root().join(".cache/jagged/torch-venv/bin/python3");
    assert!(python.is_file(), "{} missing: run `just test` (scripts/fetch.sh torch)", python.display());
    let run = std::process::Command::new(python)
        .arg(root().join("scripts/export-torch.py"))
        .args([model, "--weights", "none", "--check", "2", "--images"])
        .arg(root().join(".cache/jagged/samples"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout).to_string(), String::from_utf8_lossy(&run.stderr).to_string());
    assert!(run.status.success(), "export of {model} failed: {stderr}");
    assert!(stderr.contains("top-1 agrees on 2/2"), "{stderr}");
    stdout
}

#[test]
fn untrained_torchvision_and_timm_models_export_and_run_in_a_sweep() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tv = export("torchvision:resnet18", &dir.join("models"));
    assert!(tv.starts_with("[[models]]\npath = \""), "{tv}");
    let timm = export("timm:mobilenetv3_small_050", &dir.join("models"));
    assert!(timm.contains("mobilenetv3_small_050.onnx"), "{timm}");
    // The card: torchvision's normalisation on jagged's 0..255 scale, untrained.
    let card: jagged_domain::spec::ModelCard = serde_json::from_slice(&std::fs::read(dir.join("models/resnet18.card.json")).unwrap()).unwrap();
    assert_eq!((card.input_size, card.num_classes, card.untrained), (224, 1000, true));
    assert!((card.normalize.mean[0] - 0.485 * 255.0).abs() < 1e-3 && (card.normalize.std[2] - 0.225 * 255.0).abs() < 1e-3, "{:?}", card.normalize);
    // What jagged inspect reads: ResNet-18 subsamples by 32, nothing blurred.
    let found = jagged_onnx::inspect::inspect(&std::fs::read(dir.join("models/resnet18.onnx")).unwrap()).unwrap();
    assert_eq!((found.factor, found.all_blurred), (32, false));
    // The printed entries pasted into a spec run in a sweep.
    let spec = format!(
        "name = \"exported\"\n[dataset]\npath = \"{}\"\nlimit = 2\n{tv}\n{timm}\n[[families]]\nkind = \"crop\"\nmax_shift = 1\n",
        root().join(".cache/jagged/samples").display()
    );
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let (rows, report) = jagged_testkit::sweep_rows(&dir.join("run"), &dir.join("spec.toml"));
    assert_eq!(rows.len(), 2 * 2 * 9, "two models x two images x 3x3 offsets");
    assert!(report.rows.iter().all(|r| r.untrained), "both cards say untrained");
    assert_eq!(report.models, vec!["resnet18".to_string(), "mobilenetv3_small_050".to_string()]);
}
