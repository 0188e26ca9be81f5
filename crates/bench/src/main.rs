//! `jagged-bench`: benchmarks that print a ratio against a baseline measured in
//! the same invocation (`just bench pipeline`).
//!
//! `pipeline`: bare ONNX Runtime `session.run` on EfficientNet-Lite0 against a
//! sweep through the whole system (private PostgreSQL, coordinator, gRPC, one
//! worker process, transforms, ORT, Parquet, local object store) with the same
//! model, batch size and threads. The system's throughput is its inferences over
//! the time from the first shard lease to the last commit; the bare runs are
//! taken before and after the sweep and averaged.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use jagged_client::{admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_infer::{Engine, EngineOptions};
use jagged_local::{ClusterOptions, LocalCluster};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod aggregate;
mod fleet;
mod reuse;
mod scheduler;

#[derive(Parser)]
#[command(name = "jagged-bench", about = "jagged benchmarks (ratios against same-run baselines)")]
struct Cli {
    #[command(subcommand)]
    what: What,
}

/// Settings both sides of a comparison share.
#[derive(Args)]
struct Common {
    /// ORT intra-op threads (both sides).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Batch size (both sides).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Crop grid half-width: (2m+1)^2 points per image.
    #[arg(long, default_value_t = 8)]
    max_shift: u32,
    /// Seconds of each bare ORT measurement.
    #[arg(long, default_value_t = 10.0)]
    bare_secs: f64,
    /// The model (card beside it).
    #[arg(long, default_value = ".cache/jagged/models/efficientnet_lite0.onnx")]
    model: PathBuf,
    /// The images (with labels.csv).
    #[arg(long, default_value = ".cache/jagged/samples")]
    images: PathBuf,
}

#[derive(Subcommand)]
enum What {
    /// The worker's compute step (decode, render, ORT, metrics, Parquet) in
    /// process against bare ORT session.run, on CPU or CUDA (no database needed).
    Compute {
        #[command(flatten)]
        common: Common,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: jagged_infer::Device,
        /// TF32 off on CUDA.
        #[arg(long)]
        strict_fp32: bool,
        /// Run full batches on fixed device buffers with CUDA graphs (on the CPU:
        /// the same copies, without graphs).
        #[arg(long)]
        cuda_graph: bool,
        /// The grid: `crop` (whole pixels, `--max-shift`), `circular` (wrap-around
        /// shifts, `--max-shift`), `subpixel` (crops of up to 2 px by half
        /// pixels) or `rotate` (-30 to 30 degrees by 1).
        #[arg(long, default_value = "crop")]
        grid: String,
        /// Repetitions of the shard.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Host threads (default: as a worker would choose).
        #[arg(long)]
        host_threads: Option<usize>,
    },
    /// Whole-system sweep throughput against bare ORT session.run.
    Pipeline {
        #[command(flatten)]
        common: Common,
    },
    /// Whole-system sweep throughput against the obvious Python implementation
    /// of the same protocol (`bench/python_baseline.py`), runs before and after.
    Python {
        #[command(flatten)]
        common: Common,
        /// cpu or cuda[:N], both sides (the Python side needs onnxruntime-gpu).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// The Python implementation.
        #[arg(long, default_value = "bench/python_baseline.py")]
        script: PathBuf,
        /// The Python with numpy, Pillow and onnxruntime.
        #[arg(long, default_value = ".cache/jagged/venv/bin/python3")]
        python: PathBuf,
    },
    /// The scheduler alone: `workers` concurrent clients (each its own gRPC
    /// connection) lease and commit shards against the coordinator and
    /// PostgreSQL as fast as they can; then one client's lease and commit
    /// latency with 1k .. 1M shards queued.
    Scheduler {
        /// Concurrent worker clients.
        #[arg(long, default_value_t = 64)]
        workers: usize,
        /// Shards in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        shards: u32,
        /// Queue depths for the latency runs.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000,1000000")]
        depths: Vec<u32>,
        /// Lease+commit cycles timed at each depth.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Instead: run the clients for this many seconds twice, the second time
        /// with a REPEATABLE READ transaction held open on another connection (as
        /// an analyst's query or a backup would), and compare cycles per second
        /// and dead tuples.
        #[arg(long)]
        hold_snapshot: Option<u64>,
        /// With --hold-snapshot: also print the statements that took the most
        /// of PostgreSQL's time in each run (pg_stat_statements).
        #[arg(long)]
        statements: bool,
    },
    /// A GPU cluster's worth of simulated workers (each its own connection,
    /// heartbeating at the production interval, holding each shard for a
    /// realistic time) against two coordinators and one PostgreSQL: claim and
    /// heartbeat latencies, heartbeats absorbed, PostgreSQL connections,
    /// coordinator memory, and whether every shard was committed once.
    Fleet {
        /// Simulated workers.
        #[arg(long, default_value_t = 1000)]
        workers: usize,
        /// Shards in the sweep.
        #[arg(long, default_value_t = 3000)]
        shards: u32,
        /// Mean shard time, seconds (each drawn from 0.5x to 1.5x).
        #[arg(long, default_value_t = 10.0)]
        shard_secs: f64,
    },
    /// The report's aggregation against DuckDB on the same Parquet parts and
    /// threads, with peak memory, at each sweep size.
    Aggregate {
        /// Result rows (sweep sizes).
        #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
        rows: Vec<usize>,
        /// Threads, both sides.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// The Python with duckdb.
        #[arg(long, default_value = ".cache/jagged/venv/bin/python3")]
        python: PathBuf,
        /// The DuckDB side.
        #[arg(long, default_value = "bench/aggregate_duckdb.py")]
        script: PathBuf,
    },
    /// (Used by `aggregate`: our side in its own process.)
    #[command(hide = true)]
    AggregateRun {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Many worker processes against one coordinator on a sweep of many tiny
    /// shards (the tiny test CNN, one image per shard): shards per second, and a
    /// check that every shard was committed once and every row is there once.
    Load {
        /// Worker processes.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// Images (one shard per image and family).
        #[arg(long, default_value_t = 1000)]
        images: u32,
        /// Families (one-step diagonal shifts, each a copy).
        #[arg(long, default_value_t = 10)]
        families: u32,
        /// Shards each worker leases ahead in the measured run (the baseline
        /// run, in the same invocation, leases none ahead).
        #[arg(long, default_value_t = 8)]
        prefetch: u32,
        /// Images per shard: 1 (the scheduler's worst case), or 0 for shards
        /// sized as a user's are (`shard.target_seconds` at the measured
        /// throughput, `shard.target_inferences` before any).
        #[arg(long, default_value_t = 1)]
        shard_images: u32,
    },
    /// A three-model sweep, then the same sweep plus a fourth model (adopting
    /// the first three models' results), then all four in full: inferences run,
    /// wall time against the fourth model's share, and equal reports.
    Reuse {
        /// Images.
        #[arg(long, default_value_t = 120)]
        images: u32,
        /// Half-width of the crop and embed grids.
        #[arg(long, default_value_t = 4)]
        max_shift: u32,
        /// ORT intra-op threads of the worker.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.what {
        What::Compute { common, device, strict_fp32, cuda_graph, grid, reps, host_threads } => {
            let opts = EngineOptions { intra_threads: common.threads, device, strict_fp32, fixed_buffers: cuda_graph };
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let host = host_threads.unwrap_or_else(|| jagged_worker::default_host_threads(cores, common.threads, device));
            compute(&common, &opts, reps, host, &grid)
        }
        What::Pipeline { common } => pipeline(&common),
        What::Python { common, python: py, device, script } => python(&common, &py, &device, &script),
        What::Scheduler { workers, hold_snapshot: Some(secs), statements, .. } => scheduler::held(workers, secs, statements),
        What::Scheduler { workers, shards, depths, samples, hold_snapshot: None, .. } => scheduler::run(workers, shards, &depths, samples),
        What::Fleet { workers, shards, shard_secs } => fleet::run(workers, shards, shard_secs),
        What::Aggregate { rows, threads, python, script } => aggregate::run(&rows, threads, &python, &script),
        What::AggregateRun { dir, threads } => aggregate::run_ours(&dir, threads),
        What::Load { workers, images, families, prefetch, shard_images } => load(workers, images, families, prefetch, shard_images),
        What::Reuse { images, max_shift, threads } => reuse::run(images, max_shift, threads),
    }
}

/// Bare `session.run` throughput (inputs/s) on realistic inputs for `secs`.
fn bare(model: &Path, threads: usize, batch: u32, secs: f64, images: &Path) -> Result<f64> {
    bare_on(model, &EngineOptions::cpu(threads), batch, secs, images)
}

fn bare_on(model: &Path, opts: &EngineOptions, batch: u32, secs: f64, images: &Path) -> Result<f64> {
    let card = jagged_onnx::card::read_card(&jagged_onnx::card::card_path(model))?;
    let mut engine = Engine::load(&std::fs::read(model)?, &card, opts)?;
    let img = jagged_infer::decode_image(&std::fs::read(images.join("chelsea.png"))?)?;
    let fam = jagged_domain::transform::Family::Crop(jagged_domain::transform::Crop {
        max_shift: 4,
        step: 1.0,
        resize: None,
        resample: Default::default(),
    });
    let prep = fam.prepare(&img, card.input_size).map_err(anyhow::Error::msg)?;
    let plane = 3 * (card.input_size as usize).pow(2);
    let mut t = vec![0f32; batch as usize * plane];
    for (i, p) in fam.points().into_iter().cycle().take(batch as usize).enumerate() {
        prep.write_chw(p, &card.normalize, &mut t[i * plane..(i + 1) * plane]);
    }
    engine.run(&t, batch as usize)?; // warm-up
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        engine.run(&t, batch as usize)?;
        n += batch as usize;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Shards per second `load` measured on 2026-11-26 (2 cores), the reference of
/// its bar.
const LOAD_REFERENCE: f64 = 865.0;

fn load(workers: usize, images: u32, families: u32, prefetch: u32, shard_images: u32) -> Result<()> {
    let size = if shard_images == 0 { "sized by the planner".to_string() } else { format!("{shard_images} image(s) x 2 points each") };
    println!("load: {workers} worker processes, one coordinator, {images} images x {families} families (tiny CNN, shards of {size})");
    // Alternated, and every run's files kept until the end: a file system slows
    // down right after many deletions, which would favour whichever ran first.
    let mut rates = [0.0f64; 2];
    let mut dirs = Vec::new();
    for run in 0..4 {
        let dir = std::env::temp_dir().join(format!("jagged-bench-load-{}-{run}", std::process::id()));
        let ahead = if run % 2 == 0 { 0 } else { prefetch };
        rates[run % 2] += load_run(&dir, workers, images, families, ahead, shard_images)? / 2.0;
        dirs.push(dir);
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    println!("prefetch 0: {:.0} shards/s, prefetch {prefetch}: {:.0} shards/s (each the mean of two runs)", rates[0], rates[1]);
    println!("ratio prefetch {prefetch} / none = {:.2}", rates[1] / rates[0]);
    // The bar is a rate: twice what this bench measured when leasing
    // ahead was added (another day, the same kind of machine: rates vary by
    // day, see bench/README.md).
    println!("prefetch {prefetch} / the {LOAD_REFERENCE:.0} shards/s of 2026-11-26 = {:.2} (bar: >= 2)", rates[1] / LOAD_REFERENCE);
    Ok(())
}

/// One load sweep on a fresh local deployment whose workers lease `prefetch`
/// shards ahead; shards per second from first lease to last commit.
fn load_run(dir: &Path, workers: usize, images: u32, families: u32, prefetch: u32, shard_images: u32) -> Result<f64> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("data"))?;
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    jagged_onnx::card::write_model(&m, dir)?;
    let mut csv = String::from("file,label\n");
    for i in 0..images {
        let img = image::RgbImage::from_fn(36, 36, |x, y| image::Rgb([(x * 7 + i) as u8, (y * 5 + i / 3) as u8, (x ^ y) as u8]));
        img.save(dir.join(format!("data/{i:05}.png")))?;
        csv += &format!("{i:05}.png,{}\n", i % 10);
    }
    std::fs::write(dir.join("data/labels.csv"), csv)?;
    let mut spec = String::from("name = \"bench load\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"tiny_cnn.onnx\"\n");
    for _ in 0..families {
        spec += "[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n";
    }
    if shard_images > 0 {
        spec += &format!("[shard]\nimages = {shard_images}\n");
    }
    std::fs::write(dir.join("load.toml"), spec)?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions {
        bin,
        dir: dir.join("run"),
        workers,
        lease_ms: 30_000,
        heartbeat_ms: 2_000,
        env: vec![("JAGGED_LOG".into(), "warn".into()), ("JAGGED_PREFETCH".into(), prefetch.to_string())],
        ..Default::default()
    };
    let c = LocalCluster::start(opts)?;
    let worker_pids: Vec<u32> = c.workers.iter().filter_map(|w| w.pid()).collect();
    let coordinator_pid = c.coordinator.pid();
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&c.store_url)?;
        let config = ClientConfig::new(c.url.clone());
        let cpu = |pids: &[u32]| pids.iter().map(|&p| process_cpu_secs(p)).sum::<f64>();
        let before = (machine_busy_secs(), cpu(&worker_pids), coordinator_pid.map_or(0.0, process_cpu_secs), context_switches());
        let id = jagged_client::submit(&config, &dir.join("load.toml"), objects.as_ref(), &Default::default()).await?.sweep_id;
        let st = admin::wait(&config, id, |_| {}).await?;
        let after = (machine_busy_secs(), cpu(&worker_pids), coordinator_pid.map_or(0.0, process_cpu_secs), context_switches());
        let shards = st.total as u64;
        if st.state != SweepState::Done || st.failed > 0 || st.done as u64 != shards {
            bail!("load sweep did not complete cleanly: {}", admin::line(&st));
        }
        let store = jagged_store::Store::connect(&c.postgres.url(), 2).await?;
        let timing = store.sweep_timing(id).await?.context("no shard timing")?;
        let (first, last) = (timing.first_start_ms, timing.last_finish_ms);
        // Nothing lost, nothing twice: one output per shard, each row once.
        let outputs = store.outputs(id).await?;
        let mut seen = std::collections::HashSet::new();
        for o in &outputs {
            for r in jagged_artifacts::decode(jagged_artifacts::get(objects.as_ref(), &o.object_key).await?)? {
                if !seen.insert((r.family_index, r.image_index, r.point)) {
                    bail!("row counted twice: {:?}", (r.family_index, r.image_index, r.point));
                }
            }
        }
        let distinct: std::collections::HashSet<i64> = outputs.iter().map(|o| o.shard_id).collect();
        if outputs.len() as u64 != shards || distinct.len() as u64 != shards || seen.len() as i64 != st.inferences_total {
            bail!("lost work: {} outputs, {} distinct shards, {} rows of {}", outputs.len(), distinct.len(), seen.len(), st.inferences_total);
        }
        let per = |s: f64| s * 1000.0 / shards as f64;
        let (machine, workers, coordinator) = (per(after.0 - before.0), per(after.1 - before.1), per(after.2 - before.2));
        let switches = (after.3 - before.3) as f64 / shards as f64;
        let cpu = format!(
            "CPU per shard {machine:.2} ms: workers {workers:.2}, coordinator {coordinator:.2}, PostgreSQL and the rest {:.2}; {switches:.1} thread switches",
            machine - workers - coordinator
        );
        Ok::<_, anyhow::Error>(((last - first) as f64 / 1000.0, shards, seen.len(), cpu))
    });
    c.stop();
    let (secs, shards, rows, cpu) = result?;
    let rate = shards as f64 / secs;
    println!(
        "prefetch {prefetch}: {shards} shards in {secs:.2} s from first lease to last commit: {rate:.0} shards/s, {:.0} rows/s ({rows} rows); every shard committed exactly once, every row present once",
        rows as f64 / secs
    );
    println!("  {cpu} (from submit to done)");
    Ok(rate)
}

/// Seconds of CPU the machine spent busy (all cores, everything but idle and
/// I/O wait), from /proc/stat; 0 where there is none.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return 0.0 };
    let ticks: Vec<f64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy / clock_ticks()
}

/// Thread switches on the machine since it started, from /proc/stat.
fn context_switches() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines().find_map(|l| l.strip_prefix("ctxt ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Seconds of CPU a process (all its threads) has used so far, from /proc; 0
/// once it has gone.
fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / clock_ticks()
}

/// Clock ticks per second of /proc's times: Linux's USER_HZ, 100 on every
/// architecture it runs jagged on.
fn clock_ticks() -> f64 {
    100.0
}

/// A sweep of `crop` + `embed` (112 px) grids over the sample images through the
/// whole system (one worker); returns (inferences, seconds from first lease to last commit).
fn system_sweep(c: &Common, model: &Path, images: &Path, device: &str) -> Result<(i64, f64)> {
    let dir = std::env::temp_dir().join(format!("jagged-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("bench.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"bench pipeline\"\n[dataset]\npath = \"{}\"\n[[models]]\npath = \"{}\"\n\
             [[families]]\nkind = \"crop\"\nmax_shift = {}\n\
             [[families]]\nkind = \"embed\"\nsize = 112\nmax_shift = {}\n\
             [run]\nbatch_size = {}\n",
            images.display(),
            model.display(),
            c.max_shift,
            c.max_shift,
            c.batch
        ),
    )?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions {
        bin,
        dir: dir.clone(),
        threads: c.threads,
        lease_ms: 60_000,
        heartbeat_ms: 2_000,
        env: vec![("JAGGED_DEVICE".into(), device.into())],
        ..Default::default()
    };
    let cl = LocalCluster::start(opts)?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cl.store_url)?;
        let wall = Instant::now();
        let config = ClientConfig::new(cl.url.clone());
        let id = jagged_client::submit(&config, &spec, objects.as_ref(), &Default::default()).await?.sweep_id;
        let st = admin::wait(&config, id, |_| {}).await?;
        let wall = wall.elapsed().as_secs_f64();
        if st.state != SweepState::Done || st.failed > 0 || st.failed_items > 0 {
            bail!("bench sweep did not complete cleanly: {}", admin::line(&st));
        }
        let store = jagged_store::Store::connect(&cl.postgres.url(), 2).await?;
        let timing = store.sweep_timing(id).await?.context("no shard timing")?;
        let (first, last) = (timing.first_start_ms, timing.last_finish_ms);
        Ok::<_, anyhow::Error>((st.inferences_done, (last - first) as f64 / 1000.0, wall))
    });
    cl.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (n, secs, wall) = result?;
    println!("jagged sweep: {n} inferences in {secs:.2} s from first lease to last commit: {:.1} img/s", n as f64 / secs);
    println!("  (wall time from submit to done, incl. upload and polling: {wall:.2} s, {:.1} img/s)", n as f64 / wall);
    Ok((n, secs))
}

fn resolve_inputs(c: &Common) -> Result<(PathBuf, PathBuf)> {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        bail!("ORT_DYLIB_PATH is not set: run benchmarks with `just bench ...` (or point it at libonnxruntime.so)");
    }
    if !c.model.is_file() {
        bail!("{} not found: run `just assets release` first", c.model.display());
    }
    Ok((std::fs::canonicalize(&c.model)?, std::fs::canonicalize(&c.images)?))
}

fn pipeline(c: &Common) -> Result<()> {
    let (model, images) = resolve_inputs(c)?;
    println!("pipeline: EfficientNet-Lite0, batch {}, {} ORT thread(s), crop grid {2}x{2}", c.batch, c.threads, 2 * c.max_shift + 1);
    let b1 = bare(&model, c.threads, c.batch, c.bare_secs, &images)?;
    println!("bare ORT session.run (before): {b1:.1} img/s");
    let (n, secs) = system_sweep(c, &model, &images, "cpu")?;
    std::thread::sleep(Duration::from_millis(200));
    let b2 = bare(&model, c.threads, c.batch, c.bare_secs, &images)?;
    println!("bare ORT session.run (after): {b2:.1} img/s");
    let base = (b1 + b2) / 2.0;
    println!("ratio jagged / bare ORT = {:.3} (bar: >= 0.95)", n as f64 / secs / base);
    Ok(())
}

/// The same sweep through the system and through `bench/python_baseline.py`
/// (Pillow + numpy + onnxruntime in one process), same model, batch and threads.
fn python(c: &Common, python: &Path, device: &str, script: &Path) -> Result<()> {
    let (model, images) = resolve_inputs(c)?;
    if !python.is_file() {
        bail!("{} not found: run `scripts/fetch.sh venv` first", python.display());
    }
    println!(
        "python: EfficientNet-Lite0 on {device}, batch {}, {} ORT thread(s), crop + embed grids {2}x{2}",
        c.batch,
        c.threads,
        2 * c.max_shift + 1
    );
    if !script.is_file() {
        bail!("{} not found (run from the repository root, or give --script)", script.display());
    }
    let card = jagged_onnx::card::card_path(&model);
    let run_python = || -> Result<(i64, f64)> {
        let out = std::env::temp_dir().join(format!("jagged-bench-python-{}.csv", std::process::id()));
        let o = std::process::Command::new(python)
            .arg(script)
            .args([&model, &card, &images, &out])
            .args(["--max-shift", &c.max_shift.to_string(), "--batch", &c.batch.to_string(), "--threads", &c.threads.to_string()])
            .args(["--device", device])
            .output()?;
        let _ = std::fs::remove_file(&out);
        if !o.status.success() {
            bail!("python baseline failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).context("python baseline output")?;
        let (n, secs) = (v["inferences"].as_i64().context("inferences")?, v["seconds"].as_f64().context("seconds")?);
        println!("python (Pillow + numpy + onnxruntime): {n} inferences in {secs:.2} s: {:.1} img/s", n as f64 / secs);
        Ok((n, secs))
    };
    let (pn1, ps1) = run_python()?;
    let (n, secs) = system_sweep(c, &model, &images, device)?;
    let (pn2, ps2) = run_python()?;
    if pn1 != n || pn2 != n {
        bail!("the python baseline ran {pn1} inferences, jagged {n}: not the same protocol");
    }
    let py = (pn1 + pn2) as f64 / (ps1 + ps2);
    let bar = if device.starts_with("cuda") { ">= 2 on a GPU" } else { ">= 1.3 on CPU" };
    println!("ratio jagged / python = {:.2} (bar: {bar})", n as f64 / secs / py);
    Ok(())
}

fn compute(c: &Common, opts: &EngineOptions, reps: usize, host_threads: usize, grid: &str) -> Result<()> {
    let (batch, max_shift, bare_secs) = (c.batch, c.max_shift, c.bare_secs);
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
    use jagged_domain::transform::Family;
    let (family, what) = match grid {
        "crop" => {
            let n = 2 * max_shift + 1;
            engine.attach_views(&jagged_onnx::views::prepend(&model_bytes, &card)?, opts)?;
            (
                Family::Crop(jagged_domain::transform::Crop { max_shift, step: 1.0, resize: None, resample: Default::default() }),
                format!("a {n}x{n} crop grid"),
            )
        }
        "circular" => {
            let n = 2 * max_shift + 1;
            engine.attach_views(&jagged_onnx::views::prepend(&model_bytes, &card)?, opts)?;
            (
                Family::Circular(jagged_domain::transform::Circular { max_shift, step: 1, resize: None, resample: Default::default() }),
                format!("a {n}x{n} circular shift grid"),
            )
        }
        "subpixel" => {
            engine.attach(jagged_infer::Rendering::Shifts, &jagged_onnx::views::prepend_shifts(&model_bytes, &card)?, opts)?;
            (
                Family::Crop(jagged_domain::transform::Crop { max_shift: 2, step: 0.5, resize: None, resample: Default::default() }),
                "a 9x9 crop grid by half pixels".into(),
            )
        }
        "rotate" => {
            engine.attach(jagged_infer::Rendering::Turns, &jagged_onnx::views::prepend_turns(&model_bytes, &card)?, opts)?;
            (
                Family::Rotate(jagged_domain::transform::Rotate { from: -30.0, to: 30.0, step: 1.0, resize: None, resample: Default::default() }),
                "a rotation grid (-30 to 30 degrees)".into(),
            )
        }
        other => bail!("--grid {other}: expected crop, circular, subpixel or rotate"),
    };
    println!(
        "inputs staged in {} host memory and handed over by I/O binding; rendered in the graph, each image's pixels cross once per shard",
        if engine.pinned_staging() { "page-locked" } else { "the runtime's" }
    );
    let mut names = Vec::new();
    let mut labels = Vec::new();
    let mut bytes = Vec::new();
    for line in std::fs::read_to_string(images.join("labels.csv"))?.lines().skip(1) {
        let (file, label) = line.split_once(',').unwrap_or((line, ""));
        names.push(file.to_string());
        labels.push(label.parse().ok());
        bytes.push(bytes::Bytes::from(std::fs::read(images.join(file))?));
    }
    let mut task = jagged_testkit::task(&card, family.clone(), &names, batch);
    task.items.iter_mut().zip(labels).for_each(|(i, l)| i.image.label = l);
    let items = task.items.clone();
    let run = |engine: &mut Engine, graph_render: bool| -> Result<jagged_worker::ShardOutput> {
        let input = jagged_worker::ShardInput {
            task: &task,
            images: items.iter().cloned().zip(bytes.iter().cloned().map(|b| Ok(vec![b]))).collect(),
            host_threads,
            pad_batches: jagged_worker::pads_batches(engine.provider),
            busy: None,
            graph_render,
            taken: None,
        };
        jagged_worker::run_shard(engine, input, &|| false)?.context("not abandoned")
    };
    let points = family.points().len();
    println!("{} images x {points} points of {what} per shard", names.len());
    let mut rates = Vec::new();
    let mut parts = Vec::new();
    for graph_render in [false, true] {
        let warm = run(&mut engine, graph_render)?;
        let render = warm.render;
        let start = Instant::now();
        let mut n = 0;
        let mut t = jagged_worker::Timing::default();
        for _ in 0..reps {
            let out = run(&mut engine, graph_render)?;
            n += out.rows;
            let timing = out.timing;
            t.prepare_secs += timing.prepare_secs;
            t.run_secs += timing.run_secs;
            t.starved_secs += timing.starved_secs;
            t.finish_secs += timing.finish_secs;
            t.input_bytes += timing.input_bytes;
            t.inputs += timing.inputs;
        }
        parts.push(jagged_artifacts::decode(warm.part.into())?);
        let secs = start.elapsed().as_secs_f64();
        let ours = n as f64 / secs;
        let how = if graph_render { "in the graph".to_string() } else { format!("on {host_threads} host thread(s)") };
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
        // The bars of a GPU (bench/gpu-check.sh): host rendering at the runtime's
        // speed, the crop grid rendered on the device past it.
        let bar = match (matches!(opts.device, jagged_infer::Device::Cuda { .. }), graph_render, grid) {
            (false, _, _) => "",
            (true, false, _) => " (bar on a GPU: >= 0.95)",
            (true, true, "crop") => " (bar on a GPU: >= 1.2)",
            (true, true, _) => "",
        };
        println!("  ratio / bare ORT = {:.3}{bar}", ours / base);
        rates.push(ours);
    }
    // The same rows either way (bar the column that says where they were rendered).
    let same = parts[0].len() == parts[1].len()
        && parts[0].iter().zip(&parts[1]).all(|(a, b)| jagged_artifacts::ResultRow { render: a.render.clone(), ..b.clone() } == *a);
    println!("rows equal between the two renderings: {}", if same { "yes" } else { "NO" });
    if !same && parts[0].len() == parts[1].len() {
        // On a GPU the two sessions may choose different kernels: say how far apart.
        let top1 = parts[0].iter().zip(&parts[1]).filter(|(a, b)| a.top1 != b.top1).count();
        let worst =
            parts[0].iter().zip(&parts[1]).flat_map(|(a, b)| a.top5_prob.iter().zip(&b.top5_prob).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max);
        println!("  rows with another top-1: {top1} of {}; largest top-5 probability difference {worst:e}", parts[0].len());
    }
    println!("ratio graph / host rendering = {:.3}", rates[1] / rates[0]);
    if !same && provider == "cpu" {
        bail!("rendering in the graph changed the results");
    }
    host_breakdown(&card, &family, &bytes)?;
    Ok(())
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
