//! `jagged worker`: its configuration (flags and environment) and start.

use crate::args::{token, StoreArg};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The worker's flags (each with its environment variable).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct WorkerArgs {
    /// Coordinator URL (`https://` checks its certificate against --tls-ca).
    #[arg(long, env = "JAGGED_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
    /// PEM file of the CA that signed the coordinator's certificate (for `https://`).
    #[arg(long, env = "JAGGED_TLS_CA")]
    tls_ca: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
    /// ONNX Runtime intra-op threads (default: all cores).
    #[arg(long, env = "JAGGED_THREADS")]
    threads: Option<usize>,
    /// Execution provider: cpu, cuda or cuda:N (CUDA needs the GPU build of ONNX Runtime).
    #[arg(long, env = "JAGGED_DEVICE", default_value = "cpu")]
    device: jagged_infer::Device,
    /// On CUDA, keep full fp32 (TF32 off); results record the precision either way.
    #[arg(long, env = "JAGGED_STRICT_FP32")]
    strict_fp32: bool,
    /// Threads decoding images, rendering transforms and computing metrics,
    /// overlapped with inference (default: the cores ONNX Runtime leaves free; 0
    /// renders inline between runs; on CUDA all cores but one, at most 8).
    #[arg(long, env = "JAGGED_HOST_THREADS")]
    host_threads: Option<usize>,
    /// Worker name in logs and the database (default: host-pid).
    #[arg(long, env = "JAGGED_WORKER_NAME")]
    name: Option<String>,
    /// Exit after this many seconds without work (default: run until stopped).
    #[arg(long)]
    exit_when_idle: Option<u64>,
    /// Independent sessions on the device, each leasing and running its own
    /// shards with its own ONNX Runtime sessions (registered as `<name>-s<i>`);
    /// `--threads` is per session.
    #[arg(long, env = "JAGGED_SESSIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    sessions: u32,
    /// How long a result part that cannot be written is retried (with backoff)
    /// before the attempt is reported failed with the store's error.
    #[arg(long, env = "JAGGED_STORE_RETRY_SECS", default_value_t = 120)]
    store_retry_secs: u64,
}

impl WorkerArgs {
    /// The worker's settings, with its token from `JAGGED_WORKER_TOKEN` (or the
    /// file `JAGGED_WORKER_TOKEN_FILE` names).
    pub fn config(&self) -> Result<jagged_worker::WorkerConfig> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "worker".into());
        let threads = self.threads.unwrap_or(cores);
        Ok(jagged_worker::WorkerConfig {
            token: token("JAGGED_WORKER_TOKEN")?,
            tls_ca: self.tls_ca.clone(),
            coordinator: self.coordinator.clone(),
            store: self.store.open()?,
            name: self.name.clone().unwrap_or_else(|| format!("{host}-{}", std::process::id())),
            engine: jagged_infer::EngineOptions { intra_threads: threads, device: self.device, strict_fp32: self.strict_fp32 },
            host_threads: self.host_threads.unwrap_or_else(|| jagged_worker::default_host_threads(cores, threads, self.device)),
            idle_poll: Duration::from_millis(200),
            exit_when_idle: self.exit_when_idle.map(Duration::from_secs),
            store_retry: Duration::from_secs(self.store_retry_secs),
        })
    }
}

/// Runs the worker (or `--sessions` of them) until SIGINT or SIGTERM; each
/// finishes and commits its shard first.
pub async fn run(a: WorkerArgs) -> Result<()> {
    let config = a.config()?;
    if a.sessions == 1 {
        return Ok(jagged_worker::run(config, crate::shutdown_signal()).await?);
    }
    // One signal stops every session.
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let runs = (0..a.sessions).map(|i| {
        let mut c = config.clone();
        c.name = format!("{}-s{i}", config.name);
        let mut rx = rx.clone();
        jagged_worker::run(c, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}
