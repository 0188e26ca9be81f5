use jagged_testkit::{jagged_bin, ort, root};

fn run(bytes: &[u8], input: &[f32], side: usize, outputs: &[String]) -> Vec<Vec<f32>> {
    jagged_infer::run_outputs(bytes, "input", input, [1, 3, side, side], outputs, 1).unwrap()
}

/// The rewrite of the tiny CNN runs, and on a constant image each blurred
/// layer's feature map equals the original's away from the borders (a blur
/// keeps constants; only zero padding makes the borders differ); on a
/// non-constant image it does differ, so the comparison can fail.
#[test]
fn blurpool_keeps_constant_feature_maps_away_from_the_borders() {
    ort();
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let r = jagged_onnx::antialias::antialias(&m.bytes, 3).unwrap();
    // The tensors after each strided conv's ReLU: the BlurPool outputs in the rewrite.
    let inspect = jagged_onnx::inspect::inspect(&m.bytes).unwrap();
    assert_eq!(inspect.subsampling.len(), 2);
    let names = vec!["relu_2".to_string(), "relu_4".to_string(), "logits".to_string()];
    let a = jagged_onnx::antialias::expose(&m.bytes, &names).unwrap();
    let b = jagged_onnx::antialias::expose(&r.bytes, &names).unwrap();
    let interior = |v: &[f32], side: usize, margin: usize| -> Vec<f32> {
        let c = v.len() / (side * side);
        (0..c)
            .flat_map(|ch| (margin..side - margin).flat_map(move |y| (margin..side - margin).map(move |x| (ch * side + y) * side + x)))
            .map(|i| v[i])
            .collect()
    };
    let constant = vec![0.7f32; 3 * 32 * 32];
    let (x, y) = (run(&a, &constant, 32, &names), run(&b, &constant, 32, &names));
    for (k, (side, margin)) in [(16usize, 1usize), (8, 2)].into_iter().enumerate() {
        assert_eq!(x[k].len(), y[k].len(), "{}: same shape", names[k]);
        let (p, q) = (interior(&x[k], side, margin), interior(&y[k], side, margin));
        let worst = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{}: interior differs by {worst}", names[k]);
        assert!(p.iter().any(|&v| v > 0.0), "{}: the comparison sees activations", names[k]);
    }
    assert_eq!(y[2].len(), 10);
    // A textured image: the blur changes the maps.
    let texture: Vec<f32> = (0..3 * 32 * 32).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let (x, y) = (run(&a, &texture, 32, &names), run(&b, &texture, 32, &names));
    let diff = x[0].iter().zip(&y[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff > 1e-2, "a blur changes a textured map ({diff})");
}

/// `jagged models antialias` rewrites EfficientNet-Lite0: every subsampling op
/// is then blurred (as `jagged inspect` reports), the cumulative factor is
/// still 32, the card names the parent by hash, and the model still sees a cat
/// in `chelsea` (BlurPool without retraining keeps most of the accuracy).
#[test]
fn efficientnet_lite0_antialiased_is_all_blurred_and_still_sees_a_cat() {
    ort();
    let lite0 = root().join(".cache/jagged/models/efficientnet_lite0.onnx");
    assert!(lite0.is_file(), "run `just test` (it imports the model)");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(&lite0, tmp.path().join("lite0.onnx")).unwrap();
    std::fs::copy(lite0.with_extension("card.json"), tmp.path().join("lite0.card.json")).unwrap();
    let out = std::process::Command::new(jagged_bin())
        .args(["models", "antialias"])
        .arg(tmp.path().join("lite0.onnx"))
        .args(["--filter", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("5 subsampling op(s) anti-aliased, 0 left alone"), "{stderr}");
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(path, tmp.path().join("lite0_aa3.onnx"));
    let i = jagged_onnx::inspect::inspect(&std::fs::read(&path).unwrap()).unwrap();
    assert!(i.all_blurred && i.subsampling.len() == 5 && i.factor == 32, "{:?}", i.subsampling);
    let card = jagged_onnx::card::read_card(&path.with_extension("card.json")).unwrap();
    let aa = card.antialiased.expect("marked antialiased");
    assert_eq!((aa.filter, aa.parent.as_str()), (3, "efficientnet_lite0"));
    assert_eq!(aa.parent_sha256, jagged_artifacts::sha256_hex(&std::fs::read(&lite0).unwrap()));
    let text = std::process::Command::new(jagged_bin()).arg("inspect").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("5 subsampling op(s), 5 preceded by a low-pass filter"), "{text}");
    let top = jagged_models::predict(&path, &root().join(".cache/jagged/samples/chelsea.png"), &jagged_infer::EngineOptions::cpu(2)).unwrap();
    eprintln!("antialiased lite0 on chelsea: {top:?}");
    assert!(top.iter().take(3).any(|p| [281, 282, 285].contains(&p.class)), "a cat class in the top 3: {top:?}");
}

/// On a network that only subsamples (2x2 convolutions at stride 2, no padding),
/// shifting the input by a node's cumulative factor moves its map by exactly one
/// cell (error ~0), while a one-pixel shift changes it clearly: the sampling
/// argument, measured with the equivariance error on real ONNX Runtime outputs.
#[test]
fn a_stride_only_network_is_equivariant_to_shifts_by_its_factor_only() {
    use jagged_domain::metrics::equivariance::{cells, equivariance_error, Map};
    use jagged_onnx::graph::{Attr, Graph};
    ort();
    let mut g = Graph::default();
    let mut seed = 11u64;
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    };
    let w1 = g.init("w1", &[6, 3, 2, 2], rand(72));
    let w2 = g.init("w2", &[8, 6, 2, 2], rand(192));
    let conv = vec![("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![2, 2]))];
    let a = g.node("Conv", &["input", &w1], conv);
    let a = g.node("Relu", &[&a], vec![]);
    let conv = vec![("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![2, 2]))];
    let b = g.node("Conv", &[&a, &w2], conv);
    let f = g.node("Flatten", &[&b], vec![("axis", Attr::Int(1))]);
    let bytes = g.finish("input", 32, &f, "out", 8 * 8 * 8);
    let names = vec![a.clone(), b.clone()];
    let bytes = jagged_onnx::antialias::expose(&bytes, &names).unwrap();
    // A texture larger than the input; x_d is the window moved right by d pixels.
    let texture = rand(3 * 32 * 48);
    let window = |d: usize| -> Vec<f32> { (0..3 * 32 * 32).map(|i| texture[(i / 1024) * 32 * 48 + ((i % 1024) / 32) * 48 + i % 32 + d]).collect() };
    let maps: Vec<Vec<Vec<f32>>> = [0usize, 1, 2, 4].iter().map(|&d| run(&bytes, &window(d), 32, &names)).collect();
    fn at(m: &[f32], side: usize, c: usize) -> Map<'_> {
        Map { data: m, channels: c, height: side, width: side }
    }
    // Node 1 (factor 2, 16x16, 6 channels) and node 2 (factor 4, 8x8, 8 channels).
    for (node, side, c, k) in [(0usize, 16usize, 6usize, 2u32), (1, 8, 8, 4)] {
        let x0 = at(&maps[0][node], side, c);
        let by_factor = if k == 2 { 2 } else { 3 }; // maps[i] is x_d for d = [0, 1, 2, 4][i]
        let e_k = equivariance_error(at(&maps[by_factor][node], side, c), x0, (cells(k, k), 0), 0).unwrap();
        let e_1 = equivariance_error(at(&maps[1][node], side, c), x0, (cells(1, k), 0), 0).unwrap();
        eprintln!("node {} (factor {k}): E_k = {e_k:.2e}, one-pixel error = {e_1:.3}", names[node]);
        assert!(e_k < 1e-6, "a shift by the factor moves the map by one cell: {e_k}");
        assert!(e_1 > 0.1, "a one-pixel shift is not a whole cell: {e_1}");
    }
}

/// A `layers` sweep of the tiny CNN through the whole system (coordinator,
/// worker, result files) records every probe's error at every shift, and an
/// independent numpy computation from the exported feature maps
/// (`tests/layers_ref.py`) gets the same numbers; shifts by a node's factor are
/// near zero at that node, one-pixel shifts after a stride are not; the report
/// has the per-layer table.
#[test]
fn a_layers_sweep_matches_numpy_on_the_exported_feature_maps() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = jagged_testkit::tiny_model(&dir.join("models"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..3u32 {
        // 40x40: the resize for input 32 and shifts up to 4 is 40, the identity.
        std::fs::write(dir.join(format!("data/i{i}.png")), jagged_testkit::png(40, 40, i + 7)).unwrap();
        csv += &format!("i{i}.png,{}\n", i % 10);
    }
    std::fs::write(dir.join("data/labels.csv"), csv).unwrap();
    let spec = "name = \"layers\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n\
                [[families]]\nkind = \"layers\"\nshifts = [1, 2, 4]\n";
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    // The model with its probes exposed, and the probes, for the reference.
    let bytes = std::fs::read(&model).unwrap();
    let probes = jagged_onnx::inspect::probes(&bytes).unwrap();
    let names: Vec<String> = probes.iter().map(|p| p.tensor.clone()).collect();
    std::fs::write(dir.join("exposed.onnx"), jagged_onnx::antialias::expose(&bytes, &names).unwrap()).unwrap();
    std::fs::write(dir.join("probes.json"), serde_json::to_vec(&probes).unwrap()).unwrap();
    let out = std::process::Command::new(root().join(".cache/jagged/venv/bin/python3"))
        .arg(root().join("tests/layers_ref.py"))
        .arg(dir.join("exposed.onnx"))
        .arg(model.with_extension("card.json"))
        .arg(dir.join("data"))
        .arg(dir.join("probes.json"))
        .arg("1,2,4")
        .output()
        .expect("the test venv's python (run `just test`)");
    assert!(out.status.success(), "layers_ref.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let expected: std::collections::BTreeMap<String, Vec<Option<f64>>> = serde_json::from_slice(&out.stdout).unwrap();

    let (rows, report) = jagged_testkit::sweep_rows(&dir.join("run"), &dir.join("spec.toml"));

    assert_eq!(rows.len(), 3 * 7, "reference + 3 shifts x 2 axes per image");
    let mut compared = 0;
    for r in rows.iter().filter(|r| !r.is_reference) {
        let key = format!("{}/{}/{}", r.image_name, r.dx, r.dy);
        let theirs = expected.get(&key).unwrap_or_else(|| panic!("python has no row {key}"));
        let ours = r.layers.as_ref().expect("layers rows carry per-layer errors");
        assert_eq!(ours.len(), probes.len(), "{key}");
        for ((l, t), p) in ours.iter().zip(theirs).zip(&probes) {
            assert_eq!((l.node.as_str(), l.factor), (p.node.as_str(), p.factor));
            match (l.error, t) {
                (Some(a), Some(b)) => {
                    assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{key} {}: ours {a}, numpy {b}", l.node);
                    compared += 1;
                }
                (a, b) => assert!(a.is_none() && b.is_none(), "{key} {}: ours {a:?}, numpy {b:?}", l.node),
            }
        }
    }
    assert!(compared >= 3 * 6 * 3, "every probe at every shift: {compared}");
    // Shifts by a node's factor keep it equivariant on the interior; a one-pixel
    // shift after a stride does not.
    let t = &report.layers[0];
    assert_eq!(t.shifts, vec![1, 2, 4]);
    let col = |s: u32| t.shifts.iter().position(|&x| x == s).unwrap();
    for n in &t.nodes {
        let own = n.errors[col(n.factor)].unwrap();
        let one = n.errors[col(1)].unwrap();
        assert!(own < 0.35 * one, "{}: factor-{} shift {own} vs one pixel {one}", n.node, n.factor);
    }
    assert_eq!(t.jump, Some(0), "the first strided conv: {:?}", t.nodes);
    let md = jagged_report::Report::markdown(&report);
    assert!(md.contains("## Per-layer equivariance") && md.contains("largest 1-px jump"), "{md}");
}
