//! `jagged demo`: the whole system on this machine (a private PostgreSQL, a
//! local object store, a coordinator and workers), one sweep, its table.

use crate::args::connect_db;
use crate::sweep::{progress, OverrideArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use jagged_client::ClientConfig;
use jagged_local::{ClusterOptions, LocalCluster};
use std::path::PathBuf;

/// `jagged demo`'s arguments.
#[derive(Args, Debug, PartialEq)]
pub struct DemoArgs {
    /// The sweep spec.
    #[arg(long, default_value = "examples/demo.toml")]
    spec: PathBuf,
    /// Folder for the object store, logs and the report.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// ORT threads per worker (default: cores / workers).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    over: OverrideArgs,
}

/// Starts the local deployment, runs the sweep, writes and prints its report,
/// and stops everything it started.
pub async fn run(a: DemoArgs) -> Result<()> {
    jagged_infer::init_runtime().context("the demo needs ONNX Runtime (`just demo` fetches it)")?;
    if !a.spec.is_file() {
        bail!("demo spec {} not found (run from the repository root)", a.spec.display());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let workers = a.workers.max(1);
    let threads = a.threads.unwrap_or((cores / workers).max(1));
    let _ = std::fs::remove_dir_all(&a.out);
    let opts = ClusterOptions {
        bin: std::env::current_exe()?,
        dir: a.out.clone(),
        workers,
        threads,
        lease_ms: 30_000,
        heartbeat_ms: 2_000,
        store: None,
        env: vec![],
    };
    eprintln!("starting a private PostgreSQL, a coordinator and {workers} worker(s) ({threads} thread(s) each); logs in {}/logs", a.out.display());
    let c = tokio::task::spawn_blocking(move || LocalCluster::start(opts)).await??;
    let result = async {
        let objects = jagged_artifacts::open_store(&c.store_url)?;
        let config = ClientConfig::new(c.url.clone());
        let id = jagged_client::submit(&config, &a.spec, objects.as_ref(), &a.over.overrides()).await?.sweep_id;
        let started = std::time::Instant::now();
        let status = tokio::select! {
            s = jagged_client::admin::wait(&config, id, progress()) => s?,
            _ = crate::shutdown_signal() => bail!("interrupted"),
        };
        let secs = started.elapsed().as_secs_f64();
        eprintln!("sweep {id} {} in {secs:.1} s ({:.0} inferences/s)", status.state, status.inferences_done as f64 / secs);
        let st = connect_db(&c.postgres.url(), false).await?;
        let report = jagged_report::build(&st, objects.as_ref(), id).await?;
        let dir = a.out.join("report");
        report.write(&dir)?;
        print!("{}", report.markdown_table());
        eprintln!("report written to {}", dir.display());
        Ok(())
    }
    .await;
    tokio::task::spawn_blocking(move || c.stop()).await?;
    result
}
