//! `jagged worker`: its configuration (flags and environment) and start.

use crate::args::{token, StoreArg};
use anyhow::{bail, Context, Result};
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
    /// On CUDA, capture each model's run as a CUDA graph and replay it: full
    /// batches (CUDA pads every batch) run on input and output buffers at fixed
    /// device addresses, the staged batch copied in and the outputs out.
    #[arg(long, env = "JAGGED_CUDA_GRAPH")]
    cuda_graph: bool,
    /// Threads decoding images, rendering transforms and computing metrics,
    /// overlapped with inference (default: the cores ONNX Runtime leaves free; 0
    /// renders inline between runs; on CUDA all cores but one, at most 8).
    #[arg(long, env = "JAGGED_HOST_THREADS")]
    host_threads: Option<usize>,
    /// Where grid inputs are rendered: `host` (float tensors made on host
    /// threads), `graph` (inside the model's graph, by ONNX Runtime on its
    /// device, from each image's 8-bit pixels: crop, embed, scale, diagonal,
    /// circular and sequence points at whole pixels, sub-pixel crops and
    /// rotations; inpainted grids stay on the host), or `auto` (graph on CUDA; on the
    /// CPU, graph for sub-pixel grids only). Result rows record which.
    #[arg(long, env = "JAGGED_RENDER", default_value = "auto")]
    render: jagged_worker::Render,
    /// Worker name in logs and the database (default: host-pid).
    #[arg(long, env = "JAGGED_WORKER_NAME")]
    name: Option<String>,
    /// Exit (status 0) once no work has been ready for this long, e.g. `60s`,
    /// `5m` (default: run until stopped); for batch jobs that must end.
    #[arg(long, env = "JAGGED_EXIT_WHEN_IDLE", value_parser = crate::args::duration)]
    exit_when_idle: Option<Duration>,
    /// Work only for this sweep, and exit (status 0) once it is over.
    #[arg(long, env = "JAGGED_SWEEP")]
    sweep: Option<i64>,
    /// When told to stop (SIGTERM, SIGINT, or SIGUSR1 as Slurm sends before a
    /// time limit), how long the shard in hand may take to finish before it is
    /// handed back unfinished; a second signal hands it back at once.
    #[arg(long, env = "JAGGED_STOP_GRACE", default_value = "30s", value_parser = crate::args::duration)]
    stop_grace: Duration,
    /// Independent sessions on the device, each leasing and running its own
    /// shards with its own ONNX Runtime sessions (registered as `<name>-s<i>`);
    /// `--threads` is per session.
    #[arg(long, env = "JAGGED_SESSIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    sessions: u32,
    /// Shards leased ahead and kept waiting beside the one being computed, so a
    /// fast worker never waits on a lease call; they are handed back at once
    /// when the worker stops (default: 1 on CUDA, 0 on the CPU).
    #[arg(long, env = "JAGGED_PREFETCH", value_parser = clap::value_parser!(u32).range(0..=63))]
    prefetch: Option<u32>,
    /// How long a result part that cannot be written is retried (with backoff)
    /// before the attempt is reported failed with the store's error.
    #[arg(long, env = "JAGGED_STORE_RETRY_SECS", default_value_t = 120)]
    store_retry_secs: u64,
    /// Serve Prometheus metrics at http://<addr>/metrics (port 0 picks one).
    #[arg(long, env = "JAGGED_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Write the metrics listener's bound address to this file.
    #[arg(long, requires = "metrics_listen")]
    metrics_addr_file: Option<PathBuf>,
}

impl WorkerArgs {
    /// The raw layer: the worker's settings from its flags alone (and the
    /// machine's core count), checked against each other, with no I/O.
    pub fn settings(&self, cores: usize) -> Result<Settings> {
        if self.cuda_graph && self.device == jagged_infer::Device::Cpu {
            bail!("--cuda-graph needs --device cuda (CUDA graphs are a CUDA feature)");
        }
        let threads = self.threads.unwrap_or(cores);
        Ok(Settings {
            args: self.clone(),
            engine: jagged_infer::EngineOptions {
                intra_threads: threads,
                device: self.device,
                strict_fp32: self.strict_fp32,
                fixed_buffers: self.cuda_graph,
            },
            host_threads: self.host_threads.unwrap_or_else(|| jagged_worker::default_host_threads(cores, threads, self.device)),
            prefetch: self.prefetch.unwrap_or(match self.device {
                jagged_infer::Device::Cuda { .. } => 1,
                jagged_infer::Device::Cpu => 0,
            }),
        })
    }

    /// The worker's settings, resolved ([`WorkerArgs::settings`], then
    /// [`Settings::resolve`]).
    pub fn config(&self) -> Result<jagged_worker::WorkerConfig> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        self.settings(cores)?.resolve()
    }
}

/// The worker's settings as its flags give them, before anything is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    args: WorkerArgs,
    /// ONNX Runtime's threads, device and precision.
    pub engine: jagged_infer::EngineOptions,
    /// Threads decoding, rendering and measuring beside ONNX Runtime.
    pub host_threads: usize,
    /// Shards leased ahead.
    pub prefetch: u32,
}

impl Settings {
    /// The resolved layer: the token read (`JAGGED_WORKER_TOKEN`, or the file
    /// `JAGGED_WORKER_TOKEN_FILE` names), the object store opened, and the
    /// host's name read for the worker's default name.
    pub fn resolve(self) -> Result<jagged_worker::WorkerConfig> {
        let a = &self.args;
        let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
        let name = a.name.clone().unwrap_or_else(|| format!("{}-{}", if host.is_empty() { "worker" } else { &host }, std::process::id()));
        Ok(jagged_worker::WorkerConfig {
            token: token("JAGGED_WORKER_TOKEN")?,
            tls_ca: a.tls_ca.clone(),
            coordinator: a.coordinator.clone(),
            store: a.store.open()?,
            name,
            host,
            engine: self.engine,
            host_threads: self.host_threads,
            render: a.render,
            idle_poll: Duration::from_millis(200),
            prefetch: self.prefetch,
            exit_when_idle: a.exit_when_idle,
            sweep: a.sweep,
            stop_grace: a.stop_grace,
            store_retry: Duration::from_secs(a.store_retry_secs),
            metrics: Default::default(),
        })
    }
}

/// Runs the worker (or `--sessions` of them) until told to stop: SIGTERM,
/// SIGINT or SIGUSR1 ends leasing, and the shard in hand finishes within
/// `--stop-grace` or is handed back (at once on a second signal).
pub async fn run(a: WorkerArgs) -> Result<()> {
    let config = a.config()?;
    let stops = stop_signals()?;
    if let Some(addr) = a.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-listen {addr}"))?;
        let bound = l.local_addr()?;
        tracing::info!(addr = %bound, "metrics at /metrics");
        if let Some(f) = &a.metrics_addr_file {
            std::fs::write(f, format!("{bound}\n")).with_context(|| format!("writing {}", f.display()))?;
        }
        tokio::spawn(config.metrics.clone().serve(l));
    }
    let runs = (0..a.sessions).map(|i| {
        let mut c = config.clone();
        if a.sessions > 1 {
            c.name = format!("{}-s{i}", config.name);
        }
        jagged_worker::run(c, stops.clone())
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}

/// Counts SIGTERM, SIGINT and SIGUSR1 as they arrive.
fn stop_signals() -> Result<jagged_worker::Stops> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    let mut kinds = Vec::new();
    for kind in [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::user_defined1()] {
        kinds.push(signal(kind)?);
    }
    tokio::spawn(async move {
        loop {
            let any = futures::future::select_all(kinds.iter_mut().map(|s| Box::pin(s.recv()))).await;
            drop(any);
            tx.send_modify(|n| *n += 1);
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn settings(args: &[&str], cores: usize) -> Result<Settings> {
        Flags::try_parse_from(std::iter::once("worker").chain(args.iter().copied())).unwrap().worker.settings(cores)
    }

    #[test]
    fn settings_come_from_the_flags_alone_and_are_checked_together() {
        let s = settings(&["--device", "cpu", "--threads", "1"], 4).unwrap();
        assert_eq!((s.engine.intra_threads, s.host_threads, s.prefetch), (1, 3, 0), "the cores ORT leaves free; no leasing ahead on the CPU");
        let s = settings(&["--device", "cuda", "--threads", "2"], 16).unwrap();
        assert_eq!((s.host_threads, s.prefetch), (8, 1), "on CUDA all cores but one, at most 8; one shard leased ahead");
        let s = settings(&["--device", "cpu", "--host-threads", "0", "--prefetch", "4"], 2).unwrap();
        assert_eq!((s.engine.intra_threads, s.host_threads, s.prefetch), (2, 0, 4));
        let e = settings(&["--device", "cpu", "--cuda-graph"], 2).unwrap_err();
        assert!(e.to_string().contains("--cuda-graph needs --device cuda"), "{e}");
    }
}
