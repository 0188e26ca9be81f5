//! A worker's Prometheus metrics (`docs/metrics.md`), served at `/metrics`
//! with `jagged worker --metrics-listen`. Sessions of one process share them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A device and execution provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabel {
    /// Device (`cpu`, `cuda:0`).
    pub device: String,
    /// Execution provider (`cpu`, `cuda`).
    pub provider: String,
}

/// A stage of a shard's work, on a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `fetch`, `decode`, `render`, `inference`, `metrics`, `write` or `commit`.
    pub stage: String,
    /// Device.
    pub device: String,
    /// Execution provider.
    pub provider: String,
}

/// Committed inferences of a sweep and model, on a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InferenceLabel {
    /// Sweep id.
    pub sweep: String,
    /// Model name.
    pub model: String,
    /// Device.
    pub device: String,
    /// Execution provider.
    pub provider: String,
}

/// How a shard attempt ended here.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `committed`, `stale`, `failed`, `handed_back` or `abandoned`.
    pub outcome: String,
}

type FCounter = Counter<f64, AtomicU64>;

/// Every metric a worker exports.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    /// Inferences in shards this worker committed.
    pub inferences: Family<InferenceLabel, Counter>,
    /// Items that failed inside committed shards.
    pub items_failed: Family<DeviceLabel, Counter>,
    /// Models loaded into a session.
    pub model_loads: Family<DeviceLabel, Counter>,
    /// Seconds per stage.
    pub stage_seconds: Family<StageLabel, FCounter>,
    /// Busy seconds of the execution provider (the inference stage), for cost.
    pub busy_seconds: Family<DeviceLabel, FCounter>,
    /// Shard attempts by outcome.
    pub shards: Family<OutcomeLabel, Counter>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}

impl WorkerMetrics {
    /// Registers every metric in a new registry.
    pub fn new() -> WorkerMetrics {
        let mut r = Registry::default();
        let m = WorkerMetrics {
            registry: Default::default(),
            inferences: Default::default(),
            items_failed: Default::default(),
            model_loads: Default::default(),
            stage_seconds: Default::default(),
            busy_seconds: Default::default(),
            shards: Default::default(),
        };
        r.register("jagged_worker_inferences", "Inferences in shards this worker committed", m.inferences.clone());
        r.register("jagged_worker_items_failed", "Items that failed (unreadable, missing) inside committed shards", m.items_failed.clone());
        r.register("jagged_worker_model_loads", "Models loaded into an ONNX Runtime session", m.model_loads.clone());
        r.register_with_unit(
            "jagged_worker_stage",
            "Time spent per stage of shard work: fetch, decode, render (inference waiting for rendered batches), inference, metrics, write, commit",
            Unit::Seconds,
            m.stage_seconds.clone(),
        );
        r.register_with_unit(
            "jagged_worker_device_busy",
            "Busy time of the execution provider (inside session.run)",
            Unit::Seconds,
            m.busy_seconds.clone(),
        );
        r.register("jagged_worker_shards", "Shard attempts by outcome: committed, stale, failed, handed_back, abandoned", m.shards.clone());
        WorkerMetrics { registry: Arc::new(r), ..m }
    }

    /// Adds `secs` to a stage.
    pub fn stage(&self, stage: &str, device: &str, provider: &str, secs: f64) {
        self.stage_seconds.get_or_create(&StageLabel { stage: stage.into(), device: device.into(), provider: provider.into() }).inc_by(secs);
    }

    /// Counts a shard attempt's outcome.
    pub fn ended(&self, outcome: &str) {
        self.shards.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Serves `/metrics` on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use axum::response::IntoResponse;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = self.clone();
                async move {
                    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()).into_response()
                }
            }),
        );
        axum::serve(listener, app).await
    }
}
