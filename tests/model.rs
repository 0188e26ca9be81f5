use jagged_testkit::{ort, root};

/// EfficientNet-Lite0 converted from its PyTorch weights predicts a cat class for
/// scikit-image's `chelsea` photo (tabby 281, tiger cat 282, Egyptian cat 285).
#[test]
fn efficientnet_lite0_sees_a_cat_in_chelsea() {
    ort();
    let model = root().join(".cache/jagged/models/efficientnet_lite0.onnx");
    let image = root().join(".cache/jagged/samples/chelsea.png");
    assert!(model.is_file() && image.is_file(), "run `just test` (it fetches and imports the model)");
    let top = jagged_models::predict(&model, &image, &jagged_infer::EngineOptions::cpu(2)).unwrap();
    assert!([281, 282, 285].contains(&top[0].class), "top-5: {top:?}");
    let top3: Vec<u32> = top.iter().take(3).map(|t| t.class).collect();
    let mut sorted = top3.clone();
    sorted.sort();
    assert_eq!(sorted, vec![281, 282, 285], "tiger cat, Egyptian cat and tabby lead: {top:?}");
    assert!(top[0].name.contains("cat") || top[0].name.contains("tabby"));
}

/// Importing the same weights twice gives byte-identical ONNX files.
#[test]
fn import_is_deterministic() {
    let weights = root().join(".cache/jagged/weights/efficientnet-lite0.pth");
    assert!(weights.is_file(), "run `just test` (it fetches the weights)");
    let tmp = tempfile::tempdir().unwrap();
    let a = jagged_models::import_lite("efficientnet_lite0", &weights, None, None, &tmp.path().join("a")).unwrap();
    let b = jagged_models::import_lite("efficientnet_lite0", &weights, None, None, &tmp.path().join("b")).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// Asking for CUDA from the CPU build of ONNX Runtime is a clear error naming the
/// fix, not a silent fall-back to the CPU; with the GPU build, results say `cuda`.
#[test]
fn cuda_needs_the_gpu_runtime_and_says_so() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let model = jagged_testkit::tiny_model(tmp.path());
    let card = jagged_onnx::card::read_card(&jagged_onnx::card::card_path(&model)).unwrap();
    let opts = jagged_infer::EngineOptions { device: jagged_infer::Device::Cuda { id: 0 }, ..jagged_infer::EngineOptions::cpu(1) };
    match jagged_infer::Engine::load(&std::fs::read(&model).unwrap(), &card, &opts) {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("CUDA execution provider unavailable") && e.contains("onnxruntime-gpu"), "{e}");
        }
        Ok(engine) => assert_eq!((engine.provider, engine.precision), ("cuda", "tf32")),
    }
}

/// Every `light_*` model of the onnx package imports with seeded weights, runs in
/// batches (its fixed batch of 1 made symbolic), gives non-uniform finite
/// probabilities, and is flagged untrained; the same seed gives the same bytes.
#[test]
fn light_models_import_seeded_and_run_in_batches() {
    ort();
    let dir = root().join(".cache/jagged/light");
    assert!(dir.join("light_resnet50.onnx").is_file(), "run `just test` (it fetches the light models)");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    assert_eq!(names.len(), 9);
    for src in names {
        let name = src.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&src).unwrap();
        let m = jagged_onnx::light::seed(&bytes, &name, 1).unwrap();
        assert_eq!(m.bytes, jagged_onnx::light::seed(&bytes, &name, 1).unwrap().bytes, "{name}: deterministic");
        assert!(m.card.untrained, "{name}");
        let mut e = jagged_infer::Engine::load(&m.bytes, &m.card, &jagged_infer::EngineOptions::cpu(2)).unwrap();
        let s = m.card.input_size as usize;
        let input: Vec<f32> = (0..2 * 3 * s * s).map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0).collect();
        let rows = e.probabilities(&input, 2).unwrap();
        assert_eq!(rows.len(), 2, "{name}");
        for r in rows {
            let p = r.unwrap();
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "{name}: probabilities sum to {sum}");
            let max = p.iter().cloned().fold(0.0, f32::max);
            assert!(max > 1.5 / 1000.0, "{name}: output is uniform");
        }
    }
}

/// Random weights with identity batch norm make ResNet-50's activations grow block
/// by block until the softmax saturates; calibration sets every node's statistics
/// to those of its input (checked by measuring each node's input again) and the
/// outputs spread out.
#[test]
fn batch_norm_calibration_stops_saturation() {
    ort();
    let src = std::fs::read(root().join(".cache/jagged/light/light_resnet50.onnx")).unwrap();
    let mut m = jagged_onnx::light::seed(&src, "light_resnet50", 1).unwrap();
    let s = m.card.input_size as usize;
    // Inputs other than the calibration textures: two sample photos' centre crops.
    let mut input = Vec::new();
    for f in ["chelsea.png", "coffee.png"] {
        let img = jagged_infer::decode_image(&std::fs::read(root().join(".cache/jagged/samples").join(f)).unwrap()).unwrap();
        let fam = jagged_domain::transform::Family::Crop(jagged_domain::transform::Crop {
            max_shift: 0,
            step: 1.0,
            resize: None,
            resample: Default::default(),
        });
        let mut t = vec![0f32; 3 * s * s];
        fam.prepare(&img, s as u32).unwrap().write_chw(fam.points()[0], &m.card.normalize, &mut t);
        input.extend(t);
    }
    let top = |m: &jagged_onnx::BuiltModel| -> Vec<f32> {
        let mut e = jagged_infer::Engine::load(&m.bytes, &m.card, &jagged_infer::EngineOptions::cpu(2)).unwrap();
        e.probabilities(&input, 2).unwrap().into_iter().map(|p| p.unwrap().into_iter().fold(0.0, f32::max)).collect()
    };
    let before = top(&m);
    assert!(before.iter().all(|&p| p > 0.999), "uncalibrated outputs saturate: {before:?}");
    assert!(jagged_models::calibration_residual(&m, &input, 2).unwrap() > 1.0, "identity statistics are far from the inputs'");
    let c = jagged_models::calibrate(&mut m, 2).unwrap();
    assert_eq!(c.layers, 53);
    assert!(c.residual < jagged_models::CALIBRATION_TOLERANCE, "{c:?}");
    let after = top(&m);
    assert!(after.iter().all(|&p| p < 0.95), "calibrated outputs spread: {after:?}");
    let batch = jagged_models::calibration_batch(&m.card, 8);
    assert!(jagged_models::calibration_residual(&m, &batch, 2).unwrap() < jagged_models::CALIBRATION_TOLERANCE);
}

/// `jagged inspect` reads the sampling structure the paper argues from:
/// EfficientNet-Lite0 subsamples by 32 in five strided convolutions with no blur;
/// VGG-19 by 32 in five max pools; DenseNet-121's average-pool transitions count
/// as low-pass filters.
#[test]
fn inspect_finds_subsampling_and_blur() {
    let lite0 = std::fs::read(root().join(".cache/jagged/models/efficientnet_lite0.onnx")).unwrap();
    let i = jagged_onnx::inspect::inspect(&lite0).unwrap();
    assert_eq!((i.factor, i.subsampling.len()), (32, 5));
    assert!(i.subsampling.iter().all(|s| s.op == "Conv" && s.stride == 2 && !s.blurred));
    assert_eq!(i.subsampling.iter().map(|s| s.cumulative).collect::<Vec<_>>(), vec![2, 4, 8, 16, 32]);
    let vgg = std::fs::read(root().join(".cache/jagged/light/light_vgg19.onnx")).unwrap();
    let v = jagged_onnx::inspect::inspect(&vgg).unwrap();
    assert_eq!(v.factor, 32);
    assert!(v.subsampling.iter().all(|s| s.op == "MaxPool" && !s.blurred));
    let dense = std::fs::read(root().join(".cache/jagged/light/light_densenet121.onnx")).unwrap();
    let d = jagged_onnx::inspect::inspect(&dense).unwrap();
    assert_eq!(d.subsampling.iter().filter(|s| s.op == "AveragePool" && s.blurred).count(), 3);
    let out = std::process::Command::new(jagged_testkit::jagged_bin())
        .arg("inspect")
        .arg(root().join(".cache/jagged/models/efficientnet_lite0.onnx"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("subsampling factor 32"), "{text}");
}

/// ImageFolder datasets named by ImageNet WordNet id (`val/<wnid>/*.JPEG`) are
/// labelled with the model's class index; CSV labels may give names or ids.
#[test]
fn imagefolder_by_wordnet_id_gets_imagenet_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (wnid, f) in [("n02123159", "a.png"), ("n07920052", "b.png")] {
        std::fs::create_dir_all(d.join("val").join(wnid)).unwrap();
        std::fs::write(d.join("val").join(wnid).join(f), jagged_testkit::png(40, 30, 1)).unwrap();
    }
    let model = root().join(".cache/jagged/models/efficientnet_lite0.onnx");
    std::fs::write(
        d.join("spec.toml"),
        format!("name = \"f\"\n[dataset]\npath = \"val\"\n[[models]]\npath = \"{}\"\n[[families]]\nkind = \"diagonal\"\n", model.display()),
    )
    .unwrap();
    let store = jagged_artifacts::open_store(d.join("store").to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resolved = rt.block_on(jagged_client::resolve::resolve(&d.join("spec.toml"), store.as_ref())).unwrap().sweep;
    let labels: Vec<(String, Option<i32>)> = resolved.images.iter().map(|i| (i.name.clone(), i.label)).collect();
    assert_eq!(labels, vec![("n02123159/a.png".to_string(), Some(282)), ("n07920052/b.png".to_string(), Some(967))]);
    // A labels.csv may name classes by name or id.
    std::fs::write(d.join("val/labels.csv"), "file,label\nn02123159/a.png,tiger cat\nn07920052/b.png,n07920052\n").unwrap();
    let resolved = rt.block_on(jagged_client::resolve::resolve(&d.join("spec.toml"), store.as_ref())).unwrap().sweep;
    assert_eq!(resolved.images.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(282), Some(967)]);
    // The same spec pointed at another ImageFolder from the command line (`--dataset`,
    // `--limit`), as `just example azulay-weiss --dataset <val>` does.
    for (wnid, f) in [("n01440764", "c.png"), ("n01443537", "d.png")] {
        std::fs::create_dir_all(d.join("other").join(wnid)).unwrap();
        std::fs::write(d.join("other").join(wnid).join(f), jagged_testkit::png(40, 30, 2)).unwrap();
    }
    let over = jagged_client::Overrides { dataset: Some(d.join("other")), limit: Some(1), ..Default::default() };
    let resolved = rt.block_on(jagged_client::resolve::resolve_with(&d.join("spec.toml"), store.as_ref(), &over)).unwrap().sweep;
    let labels: Vec<(String, Option<i32>)> = resolved.images.iter().map(|i| (i.name.clone(), i.label)).collect();
    assert_eq!(labels, vec![("n01440764/c.png".to_string(), Some(0))]);
    let over = jagged_client::Overrides { dataset: Some(d.join("missing")), ..Default::default() };
    let e = rt.block_on(jagged_client::resolve::resolve_with(&d.join("spec.toml"), store.as_ref(), &over)).unwrap_err();
    assert!(format!("{e:#}").contains("--dataset") && format!("{e:#}").contains("missing"), "{e:#}");
}
