//! The worker's compute step on the tiny model: the same parts whatever its
//! threads, batches and where inputs render, widened grids, staged and bound
//! inputs, and rendering in the graph against the host's, value for value.

use jagged_testkit::ort;

/// The worker's compute step gives byte-identical result parts whatever its host
/// threads and batch size (rendering runs ahead on other threads, metrics in
/// parallel), keeps items in order with a bad one among them, and stops when its
/// lease is lost.
#[test]
fn compute_step_is_identical_for_any_host_threads_and_batch() {
    ort();
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let mut engine = jagged_infer::Engine::load(&m.bytes, &m.card, &jagged_infer::EngineOptions::cpu(1)).unwrap();
    let family = jagged_domain::transform::Family::Crop(jagged_domain::transform::Crop {
        max_shift: 3,
        step: 1.0,
        resize: None,
        resample: Default::default(),
    });
    let names: Vec<String> = (0..5).map(|i| format!("{i}.png")).collect();
    let mut base_task = jagged_testkit::task(&m.card, family, &names, 1);
    base_task.keep_probs = true;
    base_task.items.iter_mut().for_each(|i| i.image.label = Some((i.index % 3) as i32));
    let items = base_task.items.clone();
    let mut files = Vec::new();
    for i in 0..5u32 {
        let b = if i == 2 { b"not an image".to_vec() } else { jagged_testkit::png(50 + i, 44, i) };
        files.push(bytes::Bytes::from(b));
    }
    let run_as = |engine: &mut jagged_infer::Engine, batch: u32, host: usize, pad: bool, stop_after: Option<usize>, graph_render: bool| {
        let task = jagged_domain::task::ShardTask { batch_size: batch, ..base_task.clone() };
        let input = jagged_worker::ShardInput {
            task: &task,
            images: items.iter().cloned().zip(files.iter().cloned().map(|b| Ok(vec![b]))).collect(),
            host_threads: host,
            pad_batches: pad,
            busy: None,
            graph_render,
            taken: None,
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let abandoned = || stop_after.is_some_and(|n| calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= n);
        jagged_worker::run_shard(engine, input, &abandoned).unwrap()
    };
    let run = |engine: &mut jagged_infer::Engine, batch: u32, host: usize, pad: bool, stop_after: Option<usize>| {
        run_as(engine, batch, host, pad, stop_after, false)
    };
    let base = run(&mut engine, 1, 1, false, None).unwrap();
    assert_eq!(run_as(&mut engine, 1, 1, false, None, true).unwrap().render, "host", "no rendering session attached: the host renders");
    assert_eq!(base.rows, 4 * 49);
    assert_eq!(base.failed.len(), 1);
    assert_eq!(base.failed[0].name, "2.png");
    // CUDA's padded batches (every run at the full batch) give the same results too.
    for (batch, host, pad) in
        [(7, 1, false), (16, 3, false), (64, 2, false), (200, 8, false), (7, 2, true), (64, 1, true), (200, 3, true), (16, 0, false), (7, 0, true)]
    {
        let out = run(&mut engine, batch, host, pad, None).unwrap();
        assert!(out.part == base.part, "batch {batch}, {host} host threads, padded {pad}: a different part");
        assert_eq!(out.failed, base.failed);
    }
    assert!(run(&mut engine, 8, 2, false, Some(3)).is_none(), "a lost lease abandons the shard");
    assert!(run(&mut engine, 8, 0, false, Some(3)).is_none(), "inline too");

    // Rendered inside the graph: the same rows, batches mixing images of
    // different sizes included, each saying where it was rendered.
    let opts = jagged_infer::EngineOptions::cpu(1);
    engine.attach_views(&jagged_onnx::views::prepend(&m.bytes, &m.card).unwrap(), &opts).unwrap();
    let host_rows = jagged_artifacts::decode(base.part.clone().into()).unwrap();
    assert!(host_rows.iter().all(|r| r.render == "host"));
    let mut pixel_bytes = None;
    for (batch, pad) in [(1, false), (7, false), (64, true), (200, false)] {
        let out = run_as(&mut engine, batch, 1, pad, None, true).unwrap();
        assert_eq!(out.render, "graph");
        assert_eq!(out.failed, base.failed);
        let rows = jagged_artifacts::decode(out.part.into()).unwrap();
        assert_eq!(rows.len(), host_rows.len());
        for (g, h) in rows.iter().zip(&host_rows) {
            assert_eq!(g.render, "graph");
            assert_eq!(jagged_artifacts::ResultRow { render: "host".into(), ..g.clone() }, *h, "batch {batch}, padded {pad}");
        }
        // Each image crosses once per shard, whatever the batch, and each input
        // as a 40-byte view: far fewer bytes than the host's 3 x 32 x 32 floats
        // per input.
        let per_input = |t: &jagged_worker::Timing| t.input_bytes as f64 / t.inputs as f64;
        assert_eq!(per_input(&base.timing), (3 * 32 * 32 * 4) as f64);
        let pixels_once = out.timing.input_bytes - 40 * out.timing.inputs;
        assert_eq!(*pixel_bytes.get_or_insert(pixels_once), pixels_once, "batch {batch}: the images crossed more than once");
        assert!(per_input(&out.timing) * 20.0 < per_input(&base.timing), "{:?}", out.timing);
    }
    assert!(run_as(&mut engine, 8, 1, false, Some(3), true).is_none(), "a lost lease abandons a shard rendered in the graph");
    assert!(jagged_worker::pads_batches("cuda") && !jagged_worker::pads_batches("cpu"));
    use jagged_infer::{Device, Rendering};
    // `--render auto`: the graph on CUDA; on the CPU, only for sub-pixel grids.
    let auto = jagged_worker::Render::Auto;
    assert!([Rendering::Windows, Rendering::Turns, Rendering::Shifts].iter().all(|&r| auto.in_graph(Device::Cuda { id: 0 }, r)));
    assert!(auto.in_graph(Device::Cpu, Rendering::Shifts));
    assert!(!auto.in_graph(Device::Cpu, Rendering::Windows) && !auto.in_graph(Device::Cpu, Rendering::Turns));
    assert!(!jagged_worker::Render::Host.in_graph(Device::Cuda { id: 0 }, Rendering::Shifts));
    assert!(jagged_worker::Render::Graph.in_graph(Device::Cpu, Rendering::Turns));
    assert_eq!(jagged_worker::default_host_threads(16, 16, Device::Cuda { id: 0 }), 8);
    assert_eq!(jagged_worker::default_host_threads(2, 2, Device::Cpu), 0, "ORT takes every core: render inline");
    assert_eq!(jagged_worker::default_host_threads(16, 12, Device::Cpu), 4);
}

/// A widened grid (5x5 crops to 7x7) takes the earlier grid's rows it can and
/// infers only the points its widening names (41 of 49 per image: the 33
/// rows written anew and 8 earlier points next to them or the reference),
/// and its part is the one a full run of the wider grid writes, byte for byte,
/// at any batch. An item whose earlier rows are incomplete or misplaced runs its
/// whole grid; a failed item fails as before.
#[test]
fn a_widened_grid_infers_its_plan_and_writes_a_full_runs_part() {
    use jagged_domain::transform::Family;
    ort();
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let mut engine = jagged_infer::Engine::load(&m.bytes, &m.card, &jagged_infer::EngineOptions::cpu(1)).unwrap();
    let crop = |max_shift| Family::Crop(jagged_domain::transform::Crop { max_shift, step: 1.0, resize: None, resample: Default::default() });
    let names: Vec<String> = (0..5).map(|i| format!("{i}.png")).collect();
    let files: Vec<bytes::Bytes> =
        (0..5u32).map(|i| bytes::Bytes::from(if i == 2 { b"not an image".to_vec() } else { jagged_testkit::png(50 + i, 44, i) })).collect();
    let run = |engine: &mut jagged_infer::Engine, family: Family, batch: u32, taken: Option<jagged_worker::Taken>| {
        let mut task = jagged_testkit::task(&m.card, family, &names, batch);
        task.keep_probs = true;
        task.items.iter_mut().for_each(|i| i.image.label = Some((i.index % 3) as i32));
        let input = jagged_worker::ShardInput {
            task: &task,
            images: task.items.iter().cloned().zip(files.iter().cloned().map(|b| Ok(vec![b]))).collect(),
            host_threads: 1,
            pad_batches: false,
            busy: None,
            graph_render: false,
            taken,
        };
        jagged_worker::run_shard(engine, input, &|| false).unwrap().unwrap()
    };
    let old = run(&mut engine, crop(2), 8, None);
    let full = run(&mut engine, crop(3), 8, None);
    assert_eq!((old.rows, full.rows, full.inferences), (4 * 25, 4 * 49, 4 * 49));
    let widening = crop(3).widening_of(&crop(2)).unwrap();
    assert_eq!((widening.infer.len(), widening.written().len()), (41, 33), "hand-counted in the doc comment");
    let old_rows = jagged_artifacts::decode(old.part.clone().into()).unwrap();
    let taken = |drop: &dyn Fn(&jagged_artifacts::ResultRow) -> bool| {
        let mut rows: std::collections::HashMap<u32, Vec<jagged_artifacts::ResultRow>> = Default::default();
        // In reverse: the rows are placed by their point, not their order.
        for r in old_rows.iter().rev().filter(|r| !drop(r)) {
            rows.entry(r.image_index as u32).or_default().push(r.clone());
        }
        Some(jagged_worker::Taken { widening: widening.clone(), old_points: crop(2).points(), rows })
    };
    for batch in [1, 8, 64] {
        let widened = run(&mut engine, crop(3), batch, taken(&|_| false));
        assert_eq!(widened.inferences, 4 * 41, "batch {batch}");
        assert_eq!(widened.taken, 4 * 16);
        assert_eq!(widened.failed, full.failed);
        assert!(widened.part == full.part, "batch {batch}: the widened part differs from a full run's");
    }
    // Image 3 lacks a row, image 1 has one moved: both run their whole grids.
    let widened = run(&mut engine, crop(3), 8, taken(&|r| (r.image_index, r.point) == (3, 7)));
    assert_eq!((widened.inferences, widened.taken), (3 * 41 + 49, 3 * 16));
    assert!(widened.part == full.part);
    let mut moved = taken(&|_| false).unwrap();
    moved.rows.get_mut(&1).unwrap()[0].dx += 0.5;
    let widened = run(&mut engine, crop(3), 8, Some(moved));
    assert_eq!((widened.inferences, widened.taken), (3 * 41 + 49, 3 * 16));
    assert!(widened.part == full.part);
}

/// Inputs staged in the engine's host memory and handed over by I/O binding,
/// with the output written into a tensor allocated once, give the same values
/// as a plain `session.run` on the same inputs: for full and short batches, and
/// after the staged tensor is rendered over again (each run sees what it holds
/// at that run). Pixels bound once to the rendering session serve batch after
/// batch of views as `run_views` with the pixels each time does.
#[test]
fn staged_and_bound_inputs_give_the_plain_runs_values() {
    ort();
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    let opts = jagged_infer::EngineOptions::cpu(1);
    let mut engine = jagged_infer::Engine::load(&m.bytes, &m.card, &opts).unwrap();
    assert!(!engine.pinned_staging(), "the CPU stages in the runtime's own host memory");
    let s = m.card.input_size as usize;
    let plane = 3 * s * s;
    let batch = 6;
    let mut staged = engine.staging(batch).unwrap();
    assert_eq!(staged.capacity(), batch);
    assert!(staged.data().iter().all(|&v| v == 0.0), "staging starts zeroed");
    let bits = |rows: Vec<Result<Vec<f32>, String>>| rows.into_iter().flat_map(|r| r.unwrap()).map(f32::to_bits).collect::<Vec<u32>>();
    let mut seen = Vec::new();
    for round in 0..4u32 {
        // Different contents every round, in the same tensor.
        let values: Vec<f32> =
            (0..batch * plane).map(|i| (((i as u32).wrapping_mul(2654435761) ^ round.wrapping_mul(40503)) % 1000) as f32 / 250.0 - 2.0).collect();
        staged.data_mut().copy_from_slice(&values);
        for n in [batch, batch - 2, 1] {
            let want = bits(engine.probabilities(&values[..n * plane], n).unwrap());
            let got = bits(engine.probabilities_staged(&staged, n).unwrap());
            assert_eq!(got.len(), n * m.card.num_classes as usize);
            assert!(got == want, "round {round}, {n} of {batch} inputs: staged values differ from a plain run");
            if n == batch {
                seen.push(got);
            }
        }
    }
    seen.dedup();
    assert_eq!(seen.len(), 4, "each round's outputs are its own, not the first run's");

    // Fixed buffers (what CUDA graphs run on): the staged batch copied into a
    // tensor that stays put, the outputs copied out; one set per batch size.
    let fixed_opts = jagged_infer::EngineOptions { fixed_buffers: true, ..opts.clone() };
    let mut fixed = jagged_infer::Engine::load(&m.bytes, &m.card, &fixed_opts).unwrap();
    let mut small = fixed.staging(3).unwrap();
    for round in 0..3u32 {
        let values: Vec<f32> = (0..batch * plane).map(|i| ((i as u32 * 7 + round * 13) % 97) as f32 / 24.0 - 2.0).collect();
        staged.data_mut().copy_from_slice(&values);
        small.data_mut().copy_from_slice(&values[..3 * plane]);
        for (t, n) in [(&staged, batch), (&small, 3), (&staged, batch - 1)] {
            let want = bits(engine.probabilities(&values[..n * plane], n).unwrap());
            assert!(bits(fixed.probabilities_staged(t, n).unwrap()) == want, "round {round}: fixed buffers, {n} inputs");
        }
    }

    // Pixels bound once, views in batches; a second binding over other pixels.
    engine.attach_views(&jagged_onnx::views::prepend(&m.bytes, &m.card).unwrap(), &opts).unwrap();
    let images: Vec<jagged_domain::image::Rgb8> =
        [(40, 36, 4), (36, 44, 5)].iter().map(|&(w, h, seed)| jagged_infer::decode_image(&jagged_testkit::png(w, h, seed)).unwrap()).collect();
    let mut pixels = Vec::new();
    let mut starts = Vec::new();
    for img in &images {
        starts.push((pixels.len() / 3) as i64);
        pixels.extend_from_slice(&img.data);
    }
    let background = [0.5f32, -0.25, 0.0];
    let view = |k: usize, x0: i64, y0: i64| [starts[k], images[k].width as i64, images[k].height as i64, x0, y0];
    let batches: Vec<Vec<i64>> =
        vec![[view(0, 0, 0), view(0, 3, 1), view(1, -2, 4)].concat(), [view(1, 5, 0), view(0, 8, 4)].concat(), view(1, 0, 12).to_vec()];
    let mut bound = engine.bind_pixels(&pixels, background).unwrap();
    assert_eq!(bound.bytes, pixels.len() as u64 + 12);
    for (b, views) in batches.iter().enumerate() {
        let want = bits(engine.probabilities_views(&pixels, views, background).unwrap());
        let got = bits(engine.probabilities_bound_views(&mut bound, views).unwrap());
        assert!(got == want, "batch {b}: bound pixels give other values than pixels handed with the views");
    }
    // The second image alone, at the start of its own binding.
    let mut second = engine.bind_pixels(&images[1].data, background).unwrap();
    let alone = [0, images[1].width as i64, images[1].height as i64, 5, 0];
    assert!(
        bits(engine.probabilities_bound_views(&mut second, &alone).unwrap())
            == bits(engine.probabilities_bound_views(&mut bound, &view(1, 5, 0)).unwrap()),
        "the same view of the same image, bound in two places"
    );
}

/// A "model" that hands its input tensor back, flattened, so the tensor a
/// rendering in front of it produced is what comes out; its card, options and
/// engine.
fn identity_engine(side: u32) -> (Vec<u8>, jagged_domain::spec::ModelCard, jagged_infer::EngineOptions, jagged_infer::Engine) {
    let plane = 3 * (side * side) as usize;
    let mut g = jagged_onnx::graph::Graph::default();
    let flat = g.node("Flatten", &["image"], vec![("axis", jagged_onnx::graph::Attr::Int(1))]);
    let bytes = g.finish("image", side as i64, &flat, "tensor", plane as i64);
    let mut card = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default()).card;
    card.input_name = "image".into();
    card.output_name = "tensor".into();
    card.input_size = side;
    card.num_classes = plane as u32;
    card.output = jagged_domain::spec::OutputKind::Probabilities;
    card.normalize = jagged_domain::transform::Normalize { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
    let opts = jagged_infer::EngineOptions::cpu(1);
    let engine = jagged_infer::Engine::load(&bytes, &card, &opts).unwrap();
    (bytes, card, opts, engine)
}

/// Three decoded test images of different sizes.
fn three_images() -> Vec<jagged_domain::image::Rgb8> {
    [(61, 40, 1), (40, 52, 2), (33, 33, 3)]
        .iter()
        .map(|&(w, h, seed)| jagged_infer::decode_image(&jagged_testkit::png(w, h, seed)).unwrap())
        .collect()
}

/// The rendering ONNX Runtime runs in front of a model gives exactly the tensor
/// the host renders, for every family whose points are plain windows (crops,
/// embeds on black or the mean, scales, frames of sequences), with images of
/// different sizes in one run; points that are not plain windows are left to
/// the host.
#[test]
fn rendering_in_the_graph_equals_host_rendering_bit_for_bit() {
    use jagged_domain::transform::Family;
    ort();
    let side = 24u32;
    let plane = 3 * (side * side) as usize;
    let (bytes, card, opts, mut engine) = identity_engine(side);
    engine.attach_views(&jagged_onnx::views::prepend(&bytes, &card).unwrap(), &opts).unwrap();
    let images = three_images();
    let families = [
        ("kind = \"crop\"\nmax_shift = 3", true),
        ("kind = \"crop\"\nmax_shift = 2\nresize = 30\nresample = { filter = \"bilinear\", compat = \"pillow\" }", true),
        ("kind = \"embed\"\nsize = 14\nmax_shift = 4\nstep = 2", true),
        ("kind = \"embed\"\nsize = 14\nmax_shift = 5\nbackground = \"mean\"\ncrop = \"none\"", true),
        ("kind = \"diagonal\"\nbase = \"embed\"\nsize = 16\nfrom = -4\nto = 4", true),
        ("kind = \"scale\"\nfrom = 0.5\nto = 1.0\nstep = 0.25", true),
        ("kind = \"circular\"\nmax_shift = 20\nstep = 5", true),
        ("kind = \"crop\"\nmax_shift = 1\nstep = 0.5", false),
        ("kind = \"rotate\"\nfrom = -5.0\nto = 5.0\nstep = 5.0", false),
        ("kind = \"embed\"\nsize = 14\nmax_shift = 2\nbackground = \"inpaint\"", false),
    ];
    for (text, plain) in families {
        let f: Family = toml::from_str(text).unwrap();
        f.validate(Some(side)).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let prepared: Vec<_> = images.iter().map(|img| f.prepare(img, side).unwrap()).collect();
        let points = f.points();
        let mut host = Vec::new();
        let (mut pixels, mut views, mut starts) = (Vec::<u8>::new(), Vec::<i64>::new(), Vec::<(*const jagged_domain::image::Rgb8, i64)>::new());
        let mut background = None;
        for prep in &prepared {
            for &p in &points {
                let Some(v) = prep.view(p, &card.normalize) else { continue };
                let mut t = vec![0f32; plane];
                prep.write_chw(p, &card.normalize, &mut t);
                host.extend(t);
                let key = v.image as *const _;
                let start = match starts.iter().find(|(k, _)| *k == key) {
                    Some(&(_, s)) => s,
                    None => {
                        starts.push((key, (pixels.len() / 3) as i64));
                        pixels.extend_from_slice(&v.image.data);
                        starts.last().unwrap().1
                    }
                };
                views.extend([start, v.image.width as i64, v.image.height as i64, v.x0, v.y0]);
                assert!(background.is_none_or(|b| b == v.background));
                background = Some(v.background);
            }
        }
        if !plain {
            assert!(views.len() < prepared.len() * points.len() * 5, "{text}: some points are not plain windows");
        }
        if views.is_empty() {
            continue;
        }
        let got = engine.run_views(&pixels, &views, background.unwrap()).unwrap();
        assert_eq!(got.len(), host.len(), "{text}");
        let differ = got.iter().zip(&host).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{text}: {differ} of {} values differ", host.len());
    }
}

/// Rotations rendered inside the graph (bilinear, black outside, every step in
/// the host's order) give the host's tensor within 1e-5, for images of
/// different sizes and angles in one run, with the pixels bound once.
#[test]
fn rotations_in_the_graph_equal_host_rendering_within_1e_5() {
    use jagged_domain::transform::Family;
    ort();
    let side = 24u32;
    let plane = 3 * (side * side) as usize;
    let (bytes, card, opts, mut engine) = identity_engine(side);
    assert!(!engine.renders(jagged_infer::Rendering::Turns));
    engine.attach(jagged_infer::Rendering::Turns, &jagged_onnx::views::prepend_turns(&bytes, &card).unwrap(), &opts).unwrap();
    let images = three_images();
    let f: Family = toml::from_str("kind = \"rotate\"\nfrom = -30.0\nto = 45.0\nstep = 7.5").unwrap();
    f.validate(Some(side)).unwrap();
    let prepared: Vec<_> = images.iter().map(|img| f.prepare(img, side).unwrap()).collect();
    let (mut host, mut pixels, mut views, mut turns) = (Vec::new(), Vec::<u8>::new(), Vec::<i64>::new(), Vec::<f32>::new());
    for prep in &prepared {
        let start = (pixels.len() / 3) as i64;
        let mut first = None;
        for p in f.points() {
            let t = prep.turn(p).expect("every rotation point is a turn");
            assert!(prep.view(p, &card.normalize).is_none(), "and no plain window");
            let mut x = vec![0f32; plane];
            prep.write_chw(p, &card.normalize, &mut x);
            host.extend(x);
            if first.is_none() {
                pixels.extend_from_slice(&t.image.data);
                first = Some(t.image as *const _);
            }
            assert_eq!(first, Some(t.image as *const _), "one image per item");
            views.extend([start, t.image.width as i64, t.image.height as i64, 0, 0]);
            turns.extend([t.sin, t.cos]);
        }
    }
    let mut bound = engine.bind_pixels_for(jagged_infer::Rendering::Turns, &pixels, [0.0; 3]).unwrap();
    assert_eq!(bound.bytes, pixels.len() as u64, "no background for rotations");
    let n = views.len() / 5;
    let mut got = Vec::new();
    for (v, t) in views.chunks(7 * 5).zip(turns.chunks(7 * 2)) {
        got.extend(engine.probabilities_bound(&mut bound, v, jagged_infer::PerInput::Turns(t)).unwrap().into_iter().flat_map(|r| r.unwrap()));
    }
    assert_eq!(got.len(), n * plane);
    let worst = got.iter().zip(&host).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let exact = got.iter().zip(&host).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    eprintln!("rotations: {n} inputs, largest difference {worst:e}, {exact} of {} values bit-identical", got.len());
    assert!(worst <= 1e-5, "largest difference {worst}");
    // Not a blank or constant tensor: the turns move the content.
    assert!(host[..plane] != host[plane * 3..plane * 4], "different angles, different inputs");
}

/// Sub-pixel crop grids rendered inside the graph (the host's two passes of
/// Kaiser-windowed sinc taps, as matrix products in f64, the edge repeated)
/// give the host's tensor within 1e-5, whole-pixel points of the grid
/// included, for images of different sizes in one run and windows reaching
/// past the image's edge.
#[test]
fn sub_pixel_windows_in_the_graph_equal_host_rendering_within_1e_5() {
    use jagged_domain::transform::Family;
    ort();
    let side = 24u32;
    let plane = 3 * (side * side) as usize;
    let (bytes, card, opts, mut engine) = identity_engine(side);
    engine.attach(jagged_infer::Rendering::Shifts, &jagged_onnx::views::prepend_shifts(&bytes, &card).unwrap(), &opts).unwrap();
    let images = three_images();
    // Resized to 29 for a 24-pixel input: the taps of most points reach past the edge.
    let f: Family = toml::from_str("kind = \"crop\"\nmax_shift = 2\nstep = 0.5\nresize = 29").unwrap();
    f.validate(Some(side)).unwrap();
    let prepared: Vec<_> = images.iter().map(|img| f.prepare(img, side).unwrap()).collect();
    let (mut host, mut pixels, mut views, mut taps) = (Vec::new(), Vec::<u8>::new(), Vec::<i64>::new(), Vec::<f64>::new());
    let (mut whole, mut past_edge) = (0, 0);
    for prep in &prepared {
        let start = (pixels.len() / 3) as i64;
        let mut first = None;
        for p in f.points() {
            let Some(s) = prep.shift(p) else {
                assert!(!p.is_subpixel(), "every sub-pixel point is a shift");
                continue;
            };
            whole += usize::from(!p.is_subpixel());
            past_edge += usize::from(s.first[0] < 0 || s.first[1] < 0 || s.first[0] + 39 > s.image.width as i64);
            let mut x = vec![0f32; plane];
            prep.write_chw(p, &card.normalize, &mut x);
            host.extend(x);
            if first.is_none() {
                pixels.extend_from_slice(&s.image.data);
                first = Some(s.image as *const _);
            }
            views.extend([start, s.image.width as i64, s.image.height as i64, s.first[0], s.first[1]]);
            for w in s.weights {
                taps.extend(w);
                taps.push(0.0);
            }
        }
    }
    assert!(whole > 0 && past_edge > 0, "whole-pixel points and windows past the edge are both covered ({whole}, {past_edge})");
    let mut bound = engine.bind_pixels_for(jagged_infer::Rendering::Shifts, &pixels, [0.0; 3]).unwrap();
    let n = views.len() / 5;
    let cols = jagged_onnx::views::TAP_COLUMNS;
    let mut got = Vec::new();
    for (v, t) in views.chunks(9 * 5).zip(taps.chunks(9 * cols)) {
        got.extend(engine.probabilities_bound(&mut bound, v, jagged_infer::PerInput::Taps(t)).unwrap().into_iter().flat_map(|r| r.unwrap()));
    }
    assert_eq!(got.len(), n * plane);
    let worst = got.iter().zip(&host).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let exact = got.iter().zip(&host).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    eprintln!("sub-pixel windows: {n} inputs, largest difference {worst:e}, {exact} of {} values bit-identical", got.len());
    assert!(worst <= 1e-5, "largest difference {worst}");
    assert!(host[..plane] != host[plane..2 * plane], "neighbouring points differ");
}
