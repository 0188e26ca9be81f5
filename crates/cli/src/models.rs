//! `jagged models ...` and `jagged inspect`: import models, classify one image,
//! show where a graph subsamples.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `jagged models` subcommands.
#[derive(Subcommand, Debug, PartialEq)]
pub enum ModelsCmd {
    /// Import a model: efficientnet_lite0/1/2 (from their PyTorch weights), a
    /// `light_*` model of the onnx package (architecture only: seeded random
    /// weights, flagged untrained), or tiny (a small generated CNN for tests).
    Import {
        /// efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2 | light_<arch> | tiny
        model: String,
        /// Folder to write `<name>.onnx` and `<name>.card.json` into.
        #[arg(long, default_value = "models")]
        out: PathBuf,
        /// The file to import: the legacy PyTorch checkpoint (`.pth`) of an
        /// EfficientNet-Lite, or the `light_*.onnx` file.
        #[arg(long, alias = "source")]
        weights: Option<PathBuf>,
        /// JSON list of class names in index order.
        #[arg(long)]
        classes: Option<PathBuf>,
        /// JSON list of class ids (ImageNet WordNet ids) in index order.
        #[arg(long)]
        wnids: Option<PathBuf>,
        /// Seed of generated weights (tiny and light_* models).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Write Zhang's BlurPool into a model without retraining: every strided
    /// convolution or max pool becomes the op at stride 1 (then its activation)
    /// followed by a binomial blur that subsamples. The card, beside the output,
    /// is marked antialiased with the parent's hash.
    Antialias {
        /// The `.onnx` file (its card beside it).
        model: PathBuf,
        /// Blur filter size: 3, 5 or 7.
        #[arg(long, default_value_t = 3)]
        filter: u32,
        /// The rewritten `.onnx` file; default `<model>_aa<filter>.onnx` beside the input.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Classify one image at the model's reference preprocessing; prints the top-5.
    Predict {
        /// The `.onnx` file (its card beside it).
        model: PathBuf,
        /// A PNG or JPEG image.
        image: PathBuf,
        /// ONNX Runtime intra-op threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Execution provider: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: jagged_infer::Device,
        /// On CUDA, keep full fp32 (TF32 off).
        #[arg(long)]
        strict_fp32: bool,
    },
}

/// `jagged inspect`'s arguments.
#[derive(Args, Debug, PartialEq)]
pub struct InspectArgs {
    /// The `.onnx` file.
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a `jagged models` subcommand.
pub fn run(cmd: ModelsCmd) -> Result<()> {
    match cmd {
        ModelsCmd::Import { model, out, weights, classes, wnids, seed } => {
            let path = if model == "tiny" {
                jagged_models::import_tiny(seed, &out)?
            } else if model.starts_with("light_") {
                let src = weights.with_context(|| format!("--source <{model}.onnx> is needed (scripts/fetch.sh light)"))?;
                let (path, c) = jagged_models::import_light(&model, &src, seed, std::thread::available_parallelism().map_or(1, |n| n.get()), &out)?;
                if c.layers > 0 {
                    eprintln!("batch-norm statistics of {} layer(s) calibrated (inputs match them to {:.1e})", c.layers, c.residual);
                }
                path
            } else {
                let weights = weights.with_context(|| format!("--weights <file.pth> is needed to import `{model}`"))?;
                jagged_models::import_lite(&model, &weights, classes.as_deref(), wnids.as_deref(), &out)?
            };
            println!("{}", path.display());
        }
        ModelsCmd::Antialias { model, filter, out } => {
            let r = jagged_models::antialias(&model, filter, out.as_deref())?;
            for (node, op, stride) in &r.blurred {
                eprintln!("blurpool after {op} `{node}` (stride {stride} -> 1, then blur {filter}x{filter} stride {stride})");
            }
            for (node, why) in &r.skipped {
                eprintln!("left alone: `{node}`: {why}");
            }
            eprintln!("{} subsampling op(s) anti-aliased, {} left alone", r.blurred.len(), r.skipped.len());
            println!("{}", r.path.display());
        }
        ModelsCmd::Predict { model, image, threads, device, strict_fp32 } => {
            let opts = jagged_infer::EngineOptions { intra_threads: threads, device, strict_fp32, fixed_buffers: false };
            for p in jagged_models::predict(&model, &image, &opts)? {
                println!("{:.4}  {:>4}  {}", p.probability, p.class, p.name);
            }
        }
    }
    Ok(())
}

/// Runs `jagged inspect`.
pub fn inspect(a: InspectArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let i = jagged_onnx::inspect::inspect(&bytes).with_context(|| format!("inspecting {}", a.model.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&i)?);
    } else {
        print!("{}", inspection_table(&a.model, &i));
    }
    Ok(())
}

/// The human-readable form of `jagged inspect`.
fn inspection_table(model: &Path, i: &jagged_onnx::inspect::Inspection) -> String {
    use std::fmt::Write as _;
    let dims = |s: &[i64]| s.iter().map(|d| if *d < 0 { "N".to_string() } else { d.to_string() }).collect::<Vec<_>>().join(", ");
    let mut out = format!("{} ({} nodes)\n", model.display(), i.nodes);
    for p in &i.inputs {
        let _ = writeln!(out, "input   {} [{}]", p.name, dims(&p.shape));
    }
    for p in &i.outputs {
        let _ = writeln!(out, "output  {} [{}]", p.name, dims(&p.shape));
    }
    let blurred = i.subsampling.iter().filter(|s| s.blurred).count();
    let _ = writeln!(out, "subsampling factor {}; {} subsampling op(s), {blurred} preceded by a low-pass filter", i.factor, i.subsampling.len());
    if !i.subsampling.is_empty() {
        let _ = writeln!(out, "{:>3}  {:<12} {:>6} {:>6} {:>10}  {:<7}  node", "#", "op", "kernel", "stride", "cumulative", "blurred");
        for (n, s) in i.subsampling.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>3}  {:<12} {:>6} {:>6} {:>10}  {:<7}  {}",
                n + 1,
                s.op,
                s.kernel,
                s.stride,
                s.cumulative,
                if s.blurred { "yes" } else { "no" },
                s.node
            );
        }
    }
    out
}
