use jagged_testkit::{ort, root};

/// EfficientNet-Lite0 converted from its PyTorch weights predicts a cat class for
/// scikit-image's `chelsea` photo (tabby 281, tiger cat 282, Egyptian cat 285).
#[test]
fn efficientnet_lite0_sees_a_cat_in_chelsea() {
    ort();
    let model = root().join(".cache/jagged/models/efficientnet_lite0.onnx");
    let image = root().join(".cache/jagged/samples/chelsea.png");
    assert!(model.is_file() && image.is_file(), "run `just test` (it fetches and imports the model)");
    let top = jagged_cli::models::predict(&model, &image, &jagged_infer::EngineOptions::cpu(2)).unwrap();
    assert!([281, 282, 285].contains(&top[0].0), "top-5: {top:?}");
    let top3: Vec<u32> = top.iter().take(3).map(|t| t.0).collect();
    let mut sorted = top3.clone();
    sorted.sort();
    assert_eq!(sorted, vec![281, 282, 285], "tiger cat, Egyptian cat and tabby lead: {top:?}");
    assert!(top[0].1.contains("cat") || top[0].1.contains("tabby"));
}

/// Importing the same weights twice gives byte-identical ONNX files.
#[test]
fn import_is_deterministic() {
    let weights = root().join(".cache/jagged/weights/efficientnet-lite0.pth");
    assert!(weights.is_file(), "run `just test` (it fetches the weights)");
    let tmp = tempfile::tempdir().unwrap();
    let a = jagged_cli::models::import_lite("efficientnet_lite0", &weights, None, &tmp.path().join("a")).unwrap();
    let b = jagged_cli::models::import_lite("efficientnet_lite0", &weights, None, &tmp.path().join("b")).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// Asking for CUDA from the CPU build of ONNX Runtime is a clear error naming the
/// fix, not a silent fall-back to the CPU; with the GPU build, results say `cuda`.
#[test]
fn cuda_needs_the_gpu_runtime_and_says_so() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let model = jagged_testkit::tiny_model(tmp.path());
    let card = jagged_cli::models::read_card(&jagged_cli::models::card_path(&model)).unwrap();
    let opts = jagged_infer::EngineOptions { device: jagged_infer::Device::Cuda { id: 0 }, ..jagged_infer::EngineOptions::cpu(1) };
    match jagged_infer::Engine::load(&std::fs::read(&model).unwrap(), &card, &opts) {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("CUDA execution provider unavailable") && e.contains("onnxruntime-gpu"), "{e}");
        }
        Ok(engine) => assert_eq!((engine.provider, engine.precision), ("cuda", "tf32")),
    }
}
