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
    /// Serve the web dashboard here while the sweep runs (e.g. 127.0.0.1:8080).
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
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
    fresh_out(&a.out)?;
    let opts = ClusterOptions {
        bin: std::env::current_exe()?,
        dir: a.out.clone(),
        workers,
        threads,
        lease_ms: 30_000,
        heartbeat_ms: 2_000,
        coordinator_args: match a.http {
            Some(h) => vec!["--http".into(), h.to_string(), "--http-addr-file".into(), a.out.join("http.addr").display().to_string()],
            None => vec![],
        },
        ..Default::default()
    };
    eprintln!("starting a private PostgreSQL, a coordinator and {workers} worker(s) ({threads} thread(s) each); logs in {}/logs", a.out.display());
    let c = tokio::task::spawn_blocking(move || LocalCluster::start(opts)).await??;
    if a.http.is_some() {
        if let Ok(addr) = std::fs::read_to_string(a.out.join("http.addr")) {
            eprintln!("dashboard: http://{}/ (while the sweep runs)", addr.trim());
        }
    }
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
        if status.state != jagged_domain::status::SweepState::Done {
            crate::sweep::print(&status);
        }
        let st = connect_db(&c.postgres.url(), false).await?;
        let report = jagged_report::build(&st, objects.as_ref(), id).await?;
        let dir = a.out.join("report");
        report.write(&dir)?;
        print!("{}", report.terminal());
        eprintln!("report written to {}", dir.display());
        crate::sweep::finished(&status)
    }
    .await;
    tokio::task::spawn_blocking(move || c.stop()).await?;
    result
}

/// Marks a folder as the output of `jagged demo`, so a later demo may replace it.
const MARK: &str = ".jagged-demo";

/// Prepares `out` for a new demo: a missing or empty folder is used as is, a
/// previous demo's output (it holds [`MARK`]) is replaced, and anything else is
/// refused, never deleted.
fn fresh_out(out: &std::path::Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?.next().is_none();
        if !empty {
            if !out.join(MARK).is_file() {
                bail!("{} exists and was not written by `jagged demo`; nothing was touched: choose another `--out` or move it away", out.display());
            }
            std::fs::remove_dir_all(out).with_context(|| format!("removing the previous demo in {}", out.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join(MARK), "written by `jagged demo`; the next demo with this --out replaces this folder\n")
        .with_context(|| format!("writing into {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_or_earlier_demo_folders_are_used() {
        let tmp = tempfile::tempdir().unwrap();
        let foreign = tmp.path().join("thesis");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("chapter1.tex"), "keep me").unwrap();
        let err = fresh_out(&foreign).unwrap_err().to_string();
        assert!(err.contains("was not written by `jagged demo`"), "{err}");
        assert_eq!(std::fs::read_to_string(foreign.join("chapter1.tex")).unwrap(), "keep me");

        let new = tmp.path().join("new");
        fresh_out(&new).unwrap();
        std::fs::write(new.join("report.csv"), "old").unwrap();
        fresh_out(&new).unwrap();
        assert!(!new.join("report.csv").exists(), "an earlier demo's output is replaced");
        assert!(new.join(MARK).is_file());
    }
}
