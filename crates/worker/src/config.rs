//! A worker's settings, resolved: what `run` is given (the CLI reads flags and
//! the environment into them, `crates/cli/src/worker.rs`).

use jagged_infer::{Device, EngineOptions, Rendering};
use object_store::ObjectStore;
use std::sync::Arc;
use std::time::Duration;

/// Worker settings.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Coordinator URL, e.g. `http://127.0.0.1:7070`.
    pub coordinator: String,
    /// Bearer token of the worker service, if the coordinator requires one.
    pub token: Option<jagged_proto::auth::Token>,
    /// PEM file of the CA that signed the coordinator's certificate (`https://`).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Where models, images and result parts live.
    pub store: Arc<dyn ObjectStore>,
    /// Name shown in logs and the database.
    pub name: String,
    /// The host's name, registered with the worker.
    pub host: String,
    /// ONNX Runtime session settings: threads, device, precision.
    pub engine: EngineOptions,
    /// Threads for decoding, rendering and metrics, overlapped with inference.
    pub host_threads: usize,
    /// Where grid inputs are rendered.
    pub render: Render,
    /// Wait between lease attempts when no work is ready.
    pub idle_poll: Duration,
    /// Shards leased ahead and kept waiting beside the one being computed
    /// (0: lease only when the previous shard's computation is over), so a
    /// fast worker never waits on a lease call.
    pub prefetch: u32,
    /// Exit once no work has been ready for this long (None: run until stopped).
    pub exit_when_idle: Option<Duration>,
    /// Work only for this sweep, and exit once it is over.
    pub sweep: Option<i64>,
    /// Once told to stop, how long the shard in hand may take to finish before
    /// it is handed back to the coordinator (a second signal hands it back at once).
    pub stop_grace: Duration,
    /// How long writing a result part is retried (with backoff) before the
    /// attempt is reported failed with the store's error.
    pub store_retry: Duration,
    /// Prometheus metrics (shared by the sessions of one process).
    pub metrics: crate::metrics::WorkerMetrics,
}

/// Where a worker renders a grid's inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Render {
    /// On host threads, as float tensors handed to ONNX Runtime.
    Host,
    /// Inside the model's graph (`jagged_onnx::views`), by ONNX Runtime on the
    /// model's device: each image is handed over once as 8-bit pixels and each
    /// input as a 40-byte view (and, for a rotation, its sine and cosine; for a
    /// sub-pixel window, its interpolation weights). Shards of plain windows
    /// (circular shifts as windows of their crop tiled with its wrap),
    /// rotations and sub-pixel crops render there; those with other points
    /// (inpainted, per-layer) still render on the host.
    Graph,
    /// In the graph on CUDA (the host-to-device copy is what it saves); on
    /// the CPU only sub-pixel grids, whose 16-tap resampling the graph's
    /// matrix products do faster than the host's loops (`just bench compute
    /// --grid subpixel`: 1.08x), while plain windows measure alike and
    /// rotations slower there.
    #[default]
    Auto,
}

impl Render {
    /// Whether shards on `device` whose inputs `rendering` can make render in
    /// the graph.
    pub fn in_graph(self, device: Device, rendering: Rendering) -> bool {
        match self {
            Render::Host => false,
            Render::Graph => true,
            Render::Auto => matches!(device, Device::Cuda { .. }) || rendering == Rendering::Shifts,
        }
    }
}

impl std::str::FromStr for Render {
    type Err = String;

    fn from_str(s: &str) -> Result<Render, String> {
        match s {
            "host" => Ok(Render::Host),
            "graph" => Ok(Render::Graph),
            "auto" => Ok(Render::Auto),
            _ => Err(format!("unknown render `{s}`: expected host, graph or auto")),
        }
    }
}

impl std::fmt::Display for Render {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Render::Host => "host",
            Render::Graph => "graph",
            Render::Auto => "auto",
        })
    }
}

/// Default host threads: on CUDA all cores but one (at most 8); on the CPU the
/// cores ONNX Runtime's `intra_threads` leave free, where 0 (it takes them all)
/// means rendering inline between runs rather than oversubscribing the cores.
pub fn default_host_threads(cores: usize, intra_threads: usize, device: Device) -> usize {
    match device {
        Device::Cuda { .. } => cores.saturating_sub(1).clamp(1, 8),
        Device::Cpu => cores.saturating_sub(intra_threads),
    }
}
