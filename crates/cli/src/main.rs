//! `jagged`: image-transformation robustness sweeps on classifiers.

mod models;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "jagged", version, about = "Measure how classifiers change under small image transformations, at cluster scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import models into ONNX files with model cards, or classify one image.
    #[command(subcommand)]
    Models(ModelsCmd),
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
    /// Import a model: `efficientnet_lite0` (from its PyTorch weights) or `tiny`
    /// (a tiny generated CNN with seeded random weights, for tests).
    Import {
        /// efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2 | tiny
        model: String,
        /// Folder to write `<name>.onnx` and `<name>.card.json` into.
        #[arg(long, default_value = "models")]
        out: PathBuf,
        /// The legacy PyTorch checkpoint (`.pth`) with the weights.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// JSON list of class names in index order.
        #[arg(long)]
        classes: Option<PathBuf>,
        /// Seed of the tiny model's weights.
        #[arg(long, default_value_t = 7)]
        seed: u64,
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
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("JAGGED_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models(ModelsCmd::Import { model, out, weights, classes, seed }) => {
            let path = if model == "tiny" {
                let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { seed, ..Default::default() });
                models::write_model(&m, &out)?
            } else {
                let weights = weights.ok_or_else(|| anyhow::anyhow!("--weights <file.pth> is needed to import `{model}`"))?;
                models::import_lite(&model, &weights, classes.as_deref(), &out)?
            };
            println!("{}", path.display());
            Ok(())
        }
        Command::Models(ModelsCmd::Predict { model, image, threads }) => {
            for (c, name, p) in models::predict(&model, &image, threads)? {
                println!("{p:.4}  {c:>4}  {name}");
            }
            Ok(())
        }
    }
}
