//! `jagged`: measure how classifiers change under small image transformations,
//! in resumable sweeps over a coordinator, PostgreSQL and workers.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use jagged_cli::{cluster, models, sweep};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "jagged", version, about = "Measure how classifiers change under small image transformations, at cluster scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct CoordArg {
    /// Coordinator URL.
    #[arg(long, env = "JAGGED_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
}

#[derive(Args, Debug, Clone)]
struct StoreArg {
    /// Object store: a local folder (or file:///abs/path).
    #[arg(long, env = "JAGGED_STORE", default_value = "jagged-store")]
    store: String,
}

#[derive(Args, Debug, Clone)]
struct DbArg {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the coordinator: gRPC for workers and admin clients, state in PostgreSQL.
    Coordinator {
        #[command(flatten)]
        db: DbArg,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "JAGGED_LISTEN", default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Write the bound address to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Lease length without a heartbeat, ms.
        #[arg(long, env = "JAGGED_LEASE_MS", default_value_t = 30_000)]
        lease_ms: i64,
        /// Heartbeat interval asked of workers, ms.
        #[arg(long, env = "JAGGED_HEARTBEAT_MS", default_value_t = 5_000)]
        heartbeat_ms: i64,
        /// TLS certificate (PEM; its chain) for gRPC; with --tls-key, clients connect
        /// with `https://` and check it against JAGGED_TLS_CA.
        #[arg(long, env = "JAGGED_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM) of --tls-cert.
        #[arg(long, env = "JAGGED_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest gRPC message accepted, MiB (a submitted sweep is one message).
        #[arg(long, env = "JAGGED_MAX_MESSAGE_MB", default_value_t = 256)]
        max_message_mb: usize,
        /// Listen on a non-loopback address without tokens (JAGGED_WORKER_TOKEN and
        /// JAGGED_ADMIN_TOKEN, or their _FILE forms): anyone who reaches it may submit
        /// sweeps and commit results.
        #[arg(long)]
        insecure: bool,
    },
    /// Run a worker: lease shards, run them with ONNX Runtime, write results.
    Worker {
        #[command(flatten)]
        coord: CoordArg,
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
        /// Worker name in logs and the database.
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
    },
    /// Submit, watch, list and cancel sweeps.
    #[command(subcommand)]
    Sweep(SweepCmd),
    /// Aggregate a sweep's committed results: summary tables, report.html and figures.
    Report {
        /// Sweep id.
        id: i64,
        /// Output folder.
        #[arg(long, default_value = "report")]
        out: PathBuf,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Import models into ONNX files with model cards, or classify one image.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Show a model's inputs, outputs and where it subsamples: each strided op, the
    /// cumulative subsampling factor, and whether a low-pass filter precedes it.
    Inspect {
        /// The `.onnx` file.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCmd),
    /// Run the whole system on this machine: a private PostgreSQL, a local object
    /// store, a coordinator and workers; submit the demo sweep and print its table.
    Demo {
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
    },
}

/// Command-line changes to a spec.
#[derive(clap::Args, Debug, Clone)]
struct OverrideArgs {
    /// Run over this dataset folder instead of the spec's (ImageFolder `<class>/*`,
    /// or images with a labels.csv).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Use only the first N images of the dataset.
    #[arg(long)]
    limit: Option<u32>,
    /// Run the sweep even if the same one (same spec, models and images) was
    /// submitted before; without it, that sweep is returned and nothing is added.
    #[arg(long)]
    again: bool,
}

impl OverrideArgs {
    fn overrides(&self) -> jagged_cli::resolve::Overrides {
        jagged_cli::resolve::Overrides { dataset: self.dataset.clone(), limit: self.limit, again: self.again }
    }
}

#[derive(Subcommand, Debug)]
enum SweepCmd {
    /// Submit a sweep spec (TOML); models and images are uploaded to the store.
    Submit {
        /// The spec file.
        spec: PathBuf,
        /// Wait, showing progress, until the sweep finishes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        over: OverrideArgs,
        #[command(flatten)]
        coord: CoordArg,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Show a sweep's progress (default: the newest sweep).
    Status {
        /// Sweep id.
        id: Option<i64>,
        /// Keep showing progress until the sweep finishes.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        coord: CoordArg,
    },
    /// List all sweeps.
    List {
        #[command(flatten)]
        coord: CoordArg,
    },
    /// Cancel a sweep: queued and running shards stop; committed results stay.
    Cancel {
        /// Sweep id.
        id: i64,
        #[command(flatten)]
        coord: CoordArg,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
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

#[derive(Subcommand, Debug)]
enum DbCmd {
    /// Apply pending migrations.
    Migrate {
        #[command(flatten)]
        db: DbArg,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("JAGGED_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn connect_store(url: &str, migrate: bool) -> Result<jagged_store::Store> {
    let store = jagged_store::Store::connect(url, 16).await.with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    if migrate {
        store.migrate().await?;
    }
    Ok(store)
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Coordinator { db, listen, addr_file, lease_ms, heartbeat_ms, tls_cert, tls_key, insecure, max_message_mb } => {
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some(tonic::transport::Identity::from_pem(
                    std::fs::read(&c).with_context(|| format!("reading TLS certificate {}", c.display()))?,
                    std::fs::read(&k).with_context(|| format!("reading TLS key {}", k.display()))?,
                )),
                _ => None,
            };
            let auth = jagged_coordinator::Auth {
                worker: jagged_proto::auth::Token::from_env("JAGGED_WORKER_TOKEN").map_err(anyhow::Error::msg)?,
                admin: jagged_proto::auth::Token::from_env("JAGGED_ADMIN_TOKEN").map_err(anyhow::Error::msg)?,
            };
            if auth.worker.is_some() && auth.worker == auth.admin {
                anyhow::bail!("JAGGED_WORKER_TOKEN and JAGGED_ADMIN_TOKEN must differ: a worker must not be able to act as an admin");
            }
            if (auth.worker.is_none() || auth.admin.is_none()) && !listen.ip().is_loopback() && !insecure {
                anyhow::bail!(
                    "refusing to listen on {listen} without JAGGED_WORKER_TOKEN and JAGGED_ADMIN_TOKEN (or their _FILE forms); \
                     pass --insecure to allow anyone who reaches it"
                );
            }
            let store = connect_store(&db.database_url, true).await?;
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, tls = tls.is_some(), worker_token = auth.worker.is_some(), admin_token = auth.admin.is_some(), "coordinator listening");
            if let Some(f) = addr_file {
                std::fs::write(&f, format!("{addr}\n")).with_context(|| format!("writing {}", f.display()))?;
            }
            let policy = jagged_domain::lease::LeasePolicy { lease_ms, heartbeat_ms, ..Default::default() };
            let config = jagged_coordinator::Config {
                policy,
                reap_interval: Duration::from_millis((lease_ms / 4).clamp(100, 5_000) as u64),
                max_message: max_message_mb.clamp(1, 2047) * 1024 * 1024,
            };
            jagged_coordinator::serve(jagged_coordinator::Coordinator::new(store, config), listener, auth, tls, shutdown_signal()).await?;
            tracing::info!("coordinator stopped");
            Ok(())
        }
        Command::Worker { coord, store, threads, device, strict_fp32, host_threads, name, exit_when_idle, sessions } => {
            let objects = jagged_artifacts::open_store(&store.store)?;
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "worker".into());
            let config = jagged_worker::WorkerConfig {
                token: jagged_proto::auth::Token::from_env("JAGGED_WORKER_TOKEN").map_err(anyhow::Error::msg)?,
                coordinator: coord.coordinator,
                store: objects,
                name: name.unwrap_or_else(|| format!("{host}-{}", std::process::id())),
                engine: jagged_infer::EngineOptions { intra_threads: threads.unwrap_or(cores), device, strict_fp32 },
                host_threads: host_threads.unwrap_or_else(|| jagged_worker::default_host_threads(cores, threads.unwrap_or(cores), device)),
                idle_poll: Duration::from_millis(200),
                exit_when_idle: exit_when_idle.map(Duration::from_secs),
            };
            if sessions == 1 {
                return jagged_worker::run(config, shutdown_signal()).await;
            }
            // One signal stops every session; each finishes its shard first.
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = tx.send(true);
            });
            let runs = (0..sessions).map(|i| {
                let mut c = config.clone();
                c.name = format!("{}-s{i}", config.name);
                let mut rx = rx.clone();
                jagged_worker::run(c, async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
            });
            let results = futures::future::join_all(runs).await;
            results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
        }
        Command::Sweep(cmd) => sweep_cmd(cmd).await,
        Command::Report { id, out, db, store } => {
            let st = connect_store(&db.database_url, false).await?;
            let objects = jagged_artifacts::open_store(&store.store)?;
            let report = jagged_report::build(&st, objects.as_ref(), id).await?;
            report.write(&out)?;
            print!("{}", report.markdown_table());
            eprintln!("report written to {}", out.display());
            Ok(())
        }
        Command::Models(ModelsCmd::Import { model, out, weights, classes, wnids, seed }) => {
            let path = if model == "tiny" {
                let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { seed, ..Default::default() });
                models::write_model(&m, &out)?
            } else if model.starts_with("light_") {
                let src = weights.ok_or_else(|| anyhow::anyhow!("--source <{model}.onnx> is needed (scripts/fetch.sh light)"))?;
                let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
                let mut m = jagged_onnx::light::seed(&bytes, &model, seed).with_context(|| format!("seeding {}", src.display()))?;
                let c = models::calibrate(&mut m, std::thread::available_parallelism().map_or(1, |n| n.get()))?;
                if c.layers > 0 {
                    eprintln!("batch-norm statistics of {} layer(s) calibrated (inputs match them to {:.1e})", c.layers, c.residual);
                    m.card.source += &format!("; batch-norm statistics calibrated on {} synthetic textures", 8);
                }
                models::write_model(&m, &out)?
            } else {
                let weights = weights.ok_or_else(|| anyhow::anyhow!("--weights <file.pth> is needed to import `{model}`"))?;
                models::import_lite(&model, &weights, classes.as_deref(), wnids.as_deref(), &out)?
            };
            println!("{}", path.display());
            Ok(())
        }
        Command::Models(ModelsCmd::Predict { model, image, threads, device, strict_fp32 }) => {
            let opts = jagged_infer::EngineOptions { intra_threads: threads, device, strict_fp32 };
            for (c, name, p) in models::predict(&model, &image, &opts)? {
                println!("{p:.4}  {c:>4}  {name}");
            }
            Ok(())
        }
        Command::Inspect { model, json } => {
            let bytes = std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let i = jagged_onnx::inspect::inspect(&bytes).with_context(|| format!("inspecting {}", model.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                print!("{}", models::inspection_table(&model, &i));
            }
            Ok(())
        }
        Command::Db(DbCmd::Migrate { db }) => {
            connect_store(&db.database_url, true).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Demo { spec, out, workers, threads, over } => demo(spec, out, workers, threads, over.overrides()).await,
    }
}

async fn sweep_cmd(cmd: SweepCmd) -> Result<()> {
    match cmd {
        SweepCmd::Submit { spec, wait, over, coord, store } => {
            let objects = jagged_artifacts::open_store(&store.store)?;
            let id = sweep::submit_with(&coord.coordinator, &spec, objects.as_ref(), &over.overrides()).await?;
            println!("{id}");
            if wait {
                let s = sweep::wait(&coord.coordinator, id).await?;
                sweep::print(&s);
            }
            Ok(())
        }
        SweepCmd::Status { id, watch, coord } => {
            let mut client = sweep::connect(&coord.coordinator).await?;
            let id = match id {
                Some(i) => i,
                None => sweep::latest(&mut client).await?,
            };
            let s = if watch { sweep::wait(&coord.coordinator, id).await? } else { sweep::status(&mut client, id).await? };
            sweep::print(&s);
            Ok(())
        }
        SweepCmd::List { coord } => {
            let mut client = sweep::connect(&coord.coordinator).await?;
            let all = sweep::list(&mut client).await?;
            if all.is_empty() {
                println!("no sweeps");
            }
            for s in all {
                println!("{}", sweep::line(&s));
            }
            Ok(())
        }
        SweepCmd::Cancel { id, coord } => {
            let mut client = sweep::connect(&coord.coordinator).await?;
            sweep::print(&sweep::cancel(&mut client, id).await?);
            Ok(())
        }
    }
}

async fn demo(spec: PathBuf, out: PathBuf, workers: usize, threads: Option<usize>, over: jagged_cli::resolve::Overrides) -> Result<()> {
    jagged_infer::init_runtime().context("the demo needs ONNX Runtime (`just demo` fetches it)")?;
    if !spec.is_file() {
        anyhow::bail!("demo spec {} not found (run from the repository root)", spec.display());
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let workers = workers.max(1);
    let threads = threads.unwrap_or((cores / workers).max(1));
    let _ = std::fs::remove_dir_all(&out);
    let opts = cluster::ClusterOptions {
        bin: std::env::current_exe()?,
        dir: out.clone(),
        workers,
        threads,
        lease_ms: 30_000,
        heartbeat_ms: 2_000,
        store: None,
        env: vec![],
    };
    eprintln!("starting a private PostgreSQL, a coordinator and {workers} worker(s) ({threads} thread(s) each); logs in {}/logs", out.display());
    let c = tokio::task::spawn_blocking(move || cluster::LocalCluster::start(opts)).await??;
    let result = async {
        let objects = jagged_artifacts::open_store(&c.store_url)?;
        let id = sweep::submit_with(&c.url, &spec, objects.as_ref(), &over).await?;
        let started = std::time::Instant::now();
        let status = tokio::select! {
            s = sweep::wait(&c.url, id) => s?,
            _ = shutdown_signal() => anyhow::bail!("interrupted"),
        };
        let secs = started.elapsed().as_secs_f64();
        eprintln!("sweep {id} {} in {secs:.1} s ({:.0} inferences/s)", status.state, status.inferences_done as f64 / secs);
        let st = connect_store(&c.postgres.url(), false).await?;
        let report = jagged_report::build(&st, objects.as_ref(), id).await?;
        let dir = out.join("report");
        report.write(&dir)?;
        print!("{}", report.markdown_table());
        eprintln!("report written to {}", dir.display());
        Ok(())
    }
    .await;
    tokio::task::spawn_blocking(move || c.stop()).await?;
    result
}
