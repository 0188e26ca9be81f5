//! The engines a worker keeps loaded (one ONNX Runtime session set per model
//! and way of running it), and the one thread every shard is computed on.

use crate::failure::Failure;
use jagged_domain::spec::ResolvedModel;
use jagged_infer::{Engine, EngineOptions, Rendering};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Models a worker keeps loaded; past this, the least recently used is dropped.
const MAX_ENGINES: usize = 4;

/// Orders engine uses.
static ENGINE_CLOCK: AtomicU64 = AtomicU64::new(1);

/// The engine cache, shared by the lease loop (which names what is loaded) and
/// the compute thread (which loads and runs).
pub(crate) type Engines = Arc<EngineCache>;

/// Engines by key, with when each was last used, locked by the computing
/// thread for a whole shard; `loaded` names them for the async side, which must
/// never wait for a shard to end (its single thread also runs the heartbeats).
#[derive(Default)]
pub(crate) struct EngineCache {
    engines: Mutex<HashMap<String, (Engine, u64)>>,
    loaded: Mutex<Vec<String>>,
    /// The thread shards are computed on.
    pub compute: ComputeThread,
}

/// How a shard runs its model: as it is, with its probes exposed (a `layers`
/// family), or with a rendering in front (inputs rendered in the graph).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    Plain,
    Layers,
    Rendered(Rendering),
}

/// The cache key of a model run one way.
pub(crate) fn engine_key(model_key: &str, way: Way) -> String {
    match way {
        Way::Layers => format!("{model_key}#layers"),
        Way::Rendered(Rendering::Turns) => format!("{model_key}#turns"),
        Way::Rendered(Rendering::Shifts) => format!("{model_key}#shifts"),
        Way::Plain | Way::Rendered(Rendering::Windows) => model_key.to_string(),
    }
}

impl EngineCache {
    /// The keys of the engines loaded.
    pub(crate) fn loaded(&self) -> Vec<String> {
        self.loaded.lock().unwrap().clone()
    }

    /// Whether the engine under `key` is loaded.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.loaded.lock().unwrap().iter().any(|k| k == key)
    }

    /// The engines, locked (on the compute thread, for a whole shard).
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, (Engine, u64)>> {
        self.engines.lock().unwrap()
    }

    /// Puts `engine` under `key` in the locked `engines`, dropping the one used
    /// least recently when full.
    pub(crate) fn insert(&self, engines: &mut HashMap<String, (Engine, u64)>, key: String, engine: Engine) {
        if engines.len() >= MAX_ENGINES {
            let oldest = engines.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            oldest.map(|k| engines.remove(&k));
        }
        engines.insert(key, (engine, 0));
        *self.loaded.lock().unwrap() = engines.keys().cloned().collect();
    }
}

/// The engine under `key` in the locked `engines`, marked as used now.
pub(crate) fn take<'a>(engines: &'a mut HashMap<String, (Engine, u64)>, key: &str) -> &'a mut Engine {
    let (engine, used) = engines.get_mut(key).expect("loaded before");
    *used = ENGINE_CLOCK.fetch_add(1, Ordering::Relaxed);
    engine
}

/// Loads `model` (its ONNX bytes) to run `way`. Any load failure is
/// retried like any other (bounded by the sweep's attempts: another worker
/// may load what this one cannot), except a graph a `layers` sweep cannot
/// measure, which every worker would find the same.
pub(crate) fn load(bytes: &[u8], model: &ResolvedModel, opts: &EngineOptions, way: Way) -> Result<Engine, Failure> {
    let retryable = |m: String| Failure { message: m, retryable: true };
    let card = &model.card;
    match way {
        Way::Layers => {
            let fatal = |m: String| Failure { message: format!("model `{}`: {m}", model.name), retryable: false };
            let probes = jagged_onnx::inspect::probes(bytes).map_err(|e| fatal(e.to_string()))?;
            if probes.is_empty() {
                return Err(fatal("the graph has no subsampling op or global pooling for a layers sweep to measure".into()));
            }
            let tensors: Vec<String> = probes.iter().map(|p| p.tensor.clone()).collect();
            let exposed = jagged_onnx::antialias::expose(bytes, &tensors).map_err(|e| fatal(e.to_string()))?;
            let mut engine = Engine::load(&exposed, card, opts).map_err(|e| retryable(e.to_string()))?;
            engine.probes = probes;
            Ok(engine)
        }
        Way::Plain => Engine::load(bytes, card, opts).map_err(|e| retryable(e.to_string())),
        Way::Rendered(rendering) => {
            let mut engine = Engine::load(bytes, card, opts).map_err(|e| retryable(e.to_string()))?;
            // A model the rendering cannot be put in front of runs as it is.
            let prepended = match rendering {
                Rendering::Windows => jagged_onnx::views::prepend(bytes, card),
                Rendering::Turns => jagged_onnx::views::prepend_turns(bytes, card),
                Rendering::Shifts => jagged_onnx::views::prepend_shifts(bytes, card),
            };
            let attached = prepended.map(|v| engine.attach(rendering, &v, opts));
            let attached = attached.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
            let what = match rendering {
                Rendering::Windows => "grids of plain windows",
                Rendering::Turns => "rotations",
                Rendering::Shifts => "sub-pixel windows",
            };
            match attached {
                Ok(()) => tracing::info!(model = %model.name, "{what} render inside the model's graph"),
                Err(e) => tracing::warn!(model = %model.name, error = %e, "rendering {what} on the host: the graph cannot render"),
            }
            Ok(engine)
        }
    }
}

/// Says how a model on a device other than the CPU stages its inputs.
pub(crate) fn log_staging(engine: &Engine, model: &str) {
    if engine.provider == "cpu" {
        return;
    }
    if engine.pinned_staging() {
        tracing::info!(model, "inputs are staged in page-locked host memory and handed over by I/O binding");
    } else {
        tracing::warn!(model, "no pinned host allocator from the execution provider: inputs are staged in pageable memory");
    }
}

/// The thread every shard is computed on, one after another, for the life of
/// the worker: handing each shard to a tokio blocking thread (and the local
/// store's reads and writes to others) cost several thread switches per shard,
/// more than a one-image shard's rendering. It runs outside the async runtime,
/// so a local store's calls run on it directly.
pub(crate) struct ComputeThread {
    jobs: Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

impl Default for ComputeThread {
    fn default() -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("jagged-compute".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("starting the compute thread");
        ComputeThread { jobs: Mutex::new(jobs) }
    }
}

impl ComputeThread {
    /// Runs `f` on the compute thread once the shards before it are done; a
    /// panic in it is an error here (the thread goes on).
    pub(crate) async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ =
                tx.send(r.map_err(|p| {
                    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
                }));
        };
        self.jobs.lock().unwrap().send(Box::new(job)).map_err(|_| "the compute thread has ended".to_string())?;
        rx.await.map_err(|_| "the compute thread has ended".to_string())?.map_err(|m| format!("panicked: {m}"))
    }
}
