//! `compute`: the worker's compute step alone (decode, render, ONNX Runtime,
//! metrics, Parquet) against bare `session.run`, rendering on host threads
//! and inside the model's graph, with where the time went.

use crate::{bare_on, Common};
use anyhow::{bail, Context, Result};
use jagged_infer::{Engine, EngineOptions};
use std::time::Instant;

pub(crate) fn run(c: &Common, opts: &EngineOptions, reps: usize, host_threads: usize, grid: &str) -> Result<()> {
    let (batch, bare_secs) = (c.batch, c.bare_secs);
    let (model, images) = (c.model.as_path(), c.images.as_path());
    if !model.is_file() {
        bail!("{} not found: run `just assets release` first", model.display());
    }
    let (provider, precision) = opts.labels();
    let graphs = if opts.fixed_buffers { ", full batches on fixed device buffers (CUDA graphs on CUDA)" } else { "" };
    println!("compute: EfficientNet-Lite0 on {} ({provider}, {precision}), batch {batch}, {} ORT thread(s){graphs}", opts.device, opts.intra_threads);
    let base = bare_on(model, opts, batch, bare_secs, images)?;
    println!("bare ORT session.run: {base:.1} img/s");
    let card = jagged_onnx::card::read_card(&jagged_onnx::card::card_path(model))?;
    let model_bytes = std::fs::read(model)?;
    let mut engine = Engine::load(&model_bytes, &card, opts)?;
    let (family, what) = grid_of(&mut engine, &model_bytes, &card, opts, grid, c.max_shift)?;
    println!(
        "inputs staged in {} host memory and handed over by I/O binding; rendered in the graph, each image's pixels cross once per shard",
        if engine.pinned_staging() { "page-locked" } else { "the runtime's" }
    );
    let samples = Samples::read(images)?;
    let mut task = jagged_testkit::task(&card, family.clone(), &samples.names, batch);
    task.items.iter_mut().zip(&samples.labels).for_each(|(i, l)| i.image.label = *l);
    println!("{} images x {} points of {what} per shard", samples.names.len(), family.points().len());
    let shard = Shard { task: &task, bytes: &samples.bytes, host_threads };
    let mut rates = Vec::new();
    let mut parts = Vec::new();
    for graph_render in [false, true] {
        let (rate, rows) = shard.time(&mut engine, graph_render, reps)?;
        // The bars of a GPU (bench/gpu-check.sh): host rendering at the runtime's
        // speed, the crop grid rendered on the device past it.
        let bar = match (matches!(opts.device, jagged_infer::Device::Cuda { .. }), graph_render, grid) {
            (false, _, _) => "",
            (true, false, _) => " (bar on a GPU: >= 0.95)",
            (true, true, "crop") => " (bar on a GPU: >= 1.2)",
            (true, true, _) => "",
        };
        println!("  ratio / bare ORT = {:.3}{bar}", rate / base);
        rates.push(rate);
        parts.push(rows);
    }
    let same = same_rows(&parts[0], &parts[1]);
    println!("ratio graph / host rendering = {:.3}", rates[1] / rates[0]);
    if !same && provider == "cpu" {
        bail!("rendering in the graph changed the results");
    }
    host_breakdown(&card, &family, &samples.bytes)?;
    Ok(())
}

/// The family a `--grid` names, with the rendering it needs attached to the
/// engine, and how to say it.
fn grid_of(
    engine: &mut Engine,
    model_bytes: &[u8],
    card: &jagged_domain::spec::ModelCard,
    opts: &EngineOptions,
    grid: &str,
    max_shift: u32,
) -> Result<(jagged_domain::transform::Family, String)> {
    use jagged_domain::transform::{Circular, Crop, Family, Rotate};
    let n = 2 * max_shift + 1;
    Ok(match grid {
        "crop" => {
            engine.attach_views(&jagged_onnx::views::prepend(model_bytes, card)?, opts)?;
            (Family::Crop(Crop { max_shift, step: 1.0, resize: None, resample: Default::default() }), format!("a {n}x{n} crop grid"))
        }
        "circular" => {
            engine.attach_views(&jagged_onnx::views::prepend(model_bytes, card)?, opts)?;
            (Family::Circular(Circular { max_shift, step: 1, resize: None, resample: Default::default() }), format!("a {n}x{n} circular shift grid"))
        }
        "subpixel" => {
            engine.attach(jagged_infer::Rendering::Shifts, &jagged_onnx::views::prepend_shifts(model_bytes, card)?, opts)?;
            (Family::Crop(Crop { max_shift: 2, step: 0.5, resize: None, resample: Default::default() }), "a 9x9 crop grid by half pixels".into())
        }
        "rotate" => {
            engine.attach(jagged_infer::Rendering::Turns, &jagged_onnx::views::prepend_turns(model_bytes, card)?, opts)?;
            let rotate = Rotate { from: -30.0, to: 30.0, step: 1.0, resize: None, resample: Default::default() };
            (Family::Rotate(rotate), "a rotation grid (-30 to 30 degrees)".into())
        }
        other => bail!("--grid {other}: expected crop, circular, subpixel or rotate"),
    })
}

/// The sample photos: names, labels and bytes, as `labels.csv` lists them.
struct Samples {
    names: Vec<String>,
    labels: Vec<Option<i32>>,
    bytes: Vec<bytes::Bytes>,
}

impl Samples {
    fn read(images: &std::path::Path) -> Result<Samples> {
        let mut s = Samples { names: Vec::new(), labels: Vec::new(), bytes: Vec::new() };
        for line in std::fs::read_to_string(images.join("labels.csv"))?.lines().skip(1) {
            let (file, label) = line.split_once(',').unwrap_or((line, ""));
            s.names.push(file.to_string());
            s.labels.push(label.parse().ok());
            s.bytes.push(bytes::Bytes::from(std::fs::read(images.join(file))?));
        }
        Ok(s)
    }
}

/// One shard of the samples, run again and again.
struct Shard<'a> {
    task: &'a jagged_domain::task::ShardTask,
    bytes: &'a [bytes::Bytes],
    host_threads: usize,
}

impl Shard<'_> {
    fn once(&self, engine: &mut Engine, graph_render: bool) -> Result<jagged_worker::ShardOutput> {
        let input = jagged_worker::ShardInput {
            task: self.task,
            images: self.task.items.iter().cloned().zip(self.bytes.iter().cloned().map(|b| Ok(vec![b]))).collect(),
            host_threads: self.host_threads,
            pad_batches: jagged_worker::pads_batches(engine.provider),
            busy: None,
            graph_render,
            taken: None,
        };
        jagged_worker::run_shard(engine, input, &|| false)?.context("not abandoned")
    }

    /// Inferences per second over `reps` runs after a warm-up, printed with
    /// where the time went; the warm-up's rows.
    fn time(&self, engine: &mut Engine, graph_render: bool, reps: usize) -> Result<(f64, Vec<jagged_artifacts::ResultRow>)> {
        let warm = self.once(engine, graph_render)?;
        let render = warm.render;
        let start = Instant::now();
        let mut n = 0;
        let mut t = jagged_worker::Timing::default();
        for _ in 0..reps {
            let out = self.once(engine, graph_render)?;
            n += out.rows;
            let timing = out.timing;
            t.prepare_secs += timing.prepare_secs;
            t.run_secs += timing.run_secs;
            t.starved_secs += timing.starved_secs;
            t.finish_secs += timing.finish_secs;
            t.input_bytes += timing.input_bytes;
            t.inputs += timing.inputs;
        }
        let rows = jagged_artifacts::decode(warm.part.into())?;
        let secs = start.elapsed().as_secs_f64();
        let ours = n as f64 / secs;
        let how = if graph_render { "in the graph".to_string() } else { format!("on {} host thread(s)", self.host_threads) };
        println!("worker compute step, rendering {how} (rows say `{render}`): {n} inferences in {secs:.2} s: {ours:.1} img/s");
        println!(
            "  of which: prepare {:.2} s, session.run {:.2} s, {} {:.2} s, metrics+encode {:.2} s",
            t.prepare_secs,
            t.run_secs,
            if graph_render { "packing pixels and views" } else { "waiting for rendered batches" },
            t.starved_secs,
            t.finish_secs
        );
        println!(
            "  bytes handed to ONNX Runtime per inference: {:.0} ({} inputs, {:.1} MB)",
            t.input_bytes as f64 / t.inputs.max(1) as f64,
            t.inputs,
            t.input_bytes as f64 / 1e6
        );
        Ok((ours, rows))
    }
}

/// Whether both renderings gave the same rows (bar the column that says where
/// they were rendered), printed; where not, how far apart.
fn same_rows(host: &[jagged_artifacts::ResultRow], graph: &[jagged_artifacts::ResultRow]) -> bool {
    let same =
        host.len() == graph.len() && host.iter().zip(graph).all(|(a, b)| jagged_artifacts::ResultRow { render: a.render.clone(), ..b.clone() } == *a);
    println!("rows equal between the two renderings: {}", if same { "yes" } else { "NO" });
    if !same && host.len() == graph.len() {
        // On a GPU the two sessions may choose different kernels: say how far apart.
        let top1 = host.iter().zip(graph).filter(|(a, b)| a.top1 != b.top1).count();
        let worst = host.iter().zip(graph).flat_map(|(a, b)| a.top5_prob.iter().zip(&b.top5_prob).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max);
        println!("  rows with another top-1: {top1} of {}; largest top-5 probability difference {worst:e}", host.len());
    }
    same
}

/// Host-side work per inference, one thread: rendering a point into the tensor,
/// and the per-point metrics on 1000-class probability vectors.
fn host_breakdown(card: &jagged_domain::spec::ModelCard, family: &jagged_domain::transform::Family, bytes: &[bytes::Bytes]) -> Result<()> {
    let img = jagged_infer::decode_image(&bytes[0])?;
    let prep = family.prepare(&img, card.input_size).map_err(anyhow::Error::msg)?;
    let pts = family.points();
    let plane = 3 * (card.input_size as usize).pow(2);
    let mut t = vec![0f32; plane];
    let start = Instant::now();
    for p in &pts {
        prep.write_chw(*p, &card.normalize, &mut t);
    }
    let render = start.elapsed().as_secs_f64() / pts.len() as f64;
    let k = card.num_classes as usize;
    let mut rng = 1u64;
    let probs: Vec<Vec<f32>> = (0..pts.len())
        .map(|_| {
            let logits: Vec<f32> = (0..k)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (rng >> 40) as f32 / (1u64 << 24) as f32 * 8.0
                })
                .collect();
            let mut p = vec![0f32; k];
            jagged_domain::metrics::softmax(&logits, &mut p);
            p
        })
        .collect();
    let refs: Vec<&[f32]> = probs.iter().map(|v| v.as_slice()).collect();
    let start = Instant::now();
    let o = jagged_domain::metrics::image_outcomes(&refs, &family.pairs(), family.reference(), Some(3));
    let metrics = start.elapsed().as_secs_f64() / pts.len() as f64;
    assert_eq!(o.len(), pts.len());
    println!("host work per inference (1 thread): render {:.1} us, metrics {:.1} us", render * 1e6, metrics * 1e6);
    Ok(())
}
