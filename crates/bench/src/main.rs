//! `jagged-bench`: benchmarks that print a ratio against a baseline measured in
//! the same invocation (`just bench pipeline`).
//!
//! `pipeline`: bare ONNX Runtime `session.run` on EfficientNet-Lite0 against a
//! sweep through the whole system (private PostgreSQL, coordinator, gRPC, one
//! worker process, transforms, ORT, Parquet, local object store) with the same
//! model, batch size and threads. The system's throughput is its inferences over
//! the time from the first shard lease to the last commit; the bare runs are
//! taken before and after the sweep and averaged.

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use jagged_infer::{Engine, EngineOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod aggregate;
mod compute;
mod fleet;
mod load;
mod pipeline;
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
pub(crate) struct Common {
    /// ORT intra-op threads (both sides).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Batch size (both sides).
    #[arg(long, default_value_t = 32)]
    pub(crate) batch: u32,
    /// Crop grid half-width: (2m+1)^2 points per image.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_shift: u32,
    /// Seconds of each bare ORT measurement.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) bare_secs: f64,
    /// The model (card beside it).
    #[arg(long, default_value = ".cache/jagged/models/efficientnet_lite0.onnx")]
    pub(crate) model: PathBuf,
    /// The images (with labels.csv).
    #[arg(long, default_value = ".cache/jagged/samples")]
    pub(crate) images: PathBuf,
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
            compute::run(&common, &opts, reps, host, &grid)
        }
        What::Pipeline { common } => pipeline::run(&common),
        What::Python { common, python: py, device, script } => pipeline::python(&common, &py, &device, &script),
        What::Scheduler { workers, hold_snapshot: Some(secs), statements, .. } => scheduler::held(workers, secs, statements),
        What::Scheduler { workers, shards, depths, samples, hold_snapshot: None, .. } => scheduler::run(workers, shards, &depths, samples),
        What::Fleet { workers, shards, shard_secs } => fleet::run(workers, shards, shard_secs),
        What::Aggregate { rows, threads, python, script } => aggregate::run(&rows, threads, &python, &script),
        What::AggregateRun { dir, threads } => aggregate::run_ours(&dir, threads),
        What::Load { workers, images, families, prefetch, shard_images } => load::run(workers, images, families, prefetch, shard_images),
        What::Reuse { images, max_shift, threads } => reuse::run(images, max_shift, threads),
    }
}

/// Bare `session.run` throughput (inputs/s) on realistic inputs for `secs`.
pub(crate) fn bare(model: &Path, threads: usize, batch: u32, secs: f64, images: &Path) -> Result<f64> {
    bare_on(model, &EngineOptions::cpu(threads), batch, secs, images)
}

pub(crate) fn bare_on(model: &Path, opts: &EngineOptions, batch: u32, secs: f64, images: &Path) -> Result<f64> {
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

pub(crate) fn resolve_inputs(c: &Common) -> Result<(PathBuf, PathBuf)> {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        bail!("ORT_DYLIB_PATH is not set: run benchmarks with `just bench ...` (or point it at libonnxruntime.so)");
    }
    if !c.model.is_file() {
        bail!("{} not found: run `just assets release` first", c.model.display());
    }
    Ok((std::fs::canonicalize(&c.model)?, std::fs::canonicalize(&c.images)?))
}
