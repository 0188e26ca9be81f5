//! A whole jagged deployment on this machine: a private PostgreSQL cluster, a
//! local-filesystem object store, a coordinator and N workers as child
//! processes on loopback. The demo runs on it, and so do the end-to-end tests.

use crate::postgres::{LocalPostgres, PgSettings};
use crate::process::Proc;
use crate::LocalError;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `jagged` binary to run.
    pub bin: PathBuf,
    /// Folder for the object store and logs.
    pub dir: PathBuf,
    /// Worker processes.
    pub workers: usize,
    /// ORT threads per worker.
    pub threads: usize,
    /// Lease length and heartbeat interval, ms.
    pub lease_ms: i64,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: i64,
    /// Object store URL (e.g. `s3://bucket/prefix`); default: a folder in `dir`.
    pub store: Option<String>,
    /// Extra environment of the coordinator and workers (e.g. S3 settings).
    pub env: Vec<(String, String)>,
    /// Extra flags of the coordinator (`--http 127.0.0.1:0`, say).
    pub coordinator_args: Vec<String>,
    /// The private PostgreSQL cluster's binaries and extra settings.
    pub postgres: PgSettings,
}

impl Default for ClusterOptions {
    /// One worker with one ORT thread, 10 s leases renewed every 500 ms (short,
    /// so tests see lost leases soon), a local store in `dir`, and the `jagged`
    /// binary beside this program (or beside its folder, for a test binary in
    /// `target/<profile>/deps`); `dir` a fresh folder under the system's
    /// temporary one; PostgreSQL as the environment says
    /// ([`PgSettings::from_env`]). Override what a use needs.
    fn default() -> ClusterOptions {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ClusterOptions {
            bin: beside_this_program("jagged"),
            dir: std::env::temp_dir().join(format!("jagged-cluster-{}-{n}", std::process::id())),
            workers: 1,
            threads: 1,
            lease_ms: 10_000,
            heartbeat_ms: 500,
            store: None,
            env: Vec::new(),
            coordinator_args: Vec::new(),
            postgres: PgSettings::from_env(),
        }
    }
}

/// The program `name` in this program's folder, or in the folder above it
/// (where cargo puts binaries, for a test binary in `deps`).
pub fn beside_this_program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let here = exe.parent().map(|d| d.join(name)).unwrap_or_default();
    if here.is_file() {
        return here;
    }
    exe.parent().and_then(|d| d.parent()).map(|d| d.join(name)).unwrap_or(here)
}

/// A running local deployment.
pub struct LocalCluster {
    /// Options it was started with.
    pub opts: ClusterOptions,
    /// The coordinator process.
    pub coordinator: Proc,
    /// Worker processes.
    pub workers: Vec<Proc>,
    /// Coordinator URL.
    pub url: String,
    /// Object store URL (a folder).
    pub store_url: String,
    /// The private PostgreSQL cluster (dropped last).
    pub postgres: LocalPostgres,
}

impl LocalCluster {
    /// Starts PostgreSQL, the coordinator and the workers.
    pub fn start(opts: ClusterOptions) -> Result<LocalCluster, LocalError> {
        if !opts.bin.is_file() {
            return Err(LocalError::Cluster(format!("jagged binary {} not found (build it with `cargo build`)", opts.bin.display())));
        }
        let logs = opts.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| LocalError::Io(format!("creating {}", logs.display()), e))?;
        let postgres = LocalPostgres::start_using(&opts.postgres)?;
        let store_url = match &opts.store {
            Some(url) => url.clone(),
            None => {
                let store_dir = opts.dir.join("store");
                let io = |e| LocalError::Io(format!("creating {}", store_dir.display()), e);
                std::fs::create_dir_all(&store_dir).map_err(io)?;
                std::fs::canonicalize(&store_dir).map_err(io)?.display().to_string()
            }
        };
        // `JAGGED_LISTEN` in `env` picks another listen address (e.g. `0.0.0.0:0`).
        let listen = opts.env.iter().find(|(k, _)| k == "JAGGED_LISTEN").map(|(_, v)| v.clone()).unwrap_or_else(|| "127.0.0.1:0".into());
        let coordinator = Self::spawn_coordinator(&opts, &postgres.url(), &listen, &store_url)?;
        let mut cluster = LocalCluster { url: String::new(), store_url, workers: vec![], coordinator, postgres, opts: opts.clone() };
        cluster.url = cluster.wait_for_coordinator()?;
        for i in 0..opts.workers {
            cluster.add_worker(i)?;
        }
        Ok(cluster)
    }

    fn spawn_coordinator(opts: &ClusterOptions, database_url: &str, listen: &str, store: &str) -> Result<Proc, LocalError> {
        let addr_file = opts.dir.join("coordinator.addr");
        let _ = std::fs::remove_file(&addr_file);
        Proc::spawn(
            "coordinator",
            &opts.bin,
            &[
                "coordinator".into(),
                "--listen".into(),
                listen.into(),
                "--database-url".into(),
                database_url.into(),
                "--addr-file".into(),
                addr_file.display().to_string(),
                "--lease-ms".into(),
                opts.lease_ms.to_string(),
                "--heartbeat-ms".into(),
                opts.heartbeat_ms.to_string(),
                // Only the dashboard reads it (finished sweeps' reports).
                "--store".into(),
                store.into(),
            ]
            .into_iter()
            .chain(opts.coordinator_args.iter().cloned())
            .collect::<Vec<String>>(),
            &opts.env,
            &opts.dir.join("logs/coordinator.log"),
        )
    }

    /// Kills the coordinator (SIGKILL) and starts it again on the address it had;
    /// workers reconnect by themselves.
    pub fn restart_coordinator(&mut self) -> Result<(), LocalError> {
        self.coordinator.kill9();
        self.start_coordinator_again()
    }

    /// Stops the coordinator with SIGTERM (it drains in-flight requests and exits)
    /// and starts it again on the address it had.
    pub fn restart_coordinator_gracefully(&mut self) -> Result<(), LocalError> {
        self.coordinator.terminate(Duration::from_secs(20));
        self.start_coordinator_again()
    }

    fn start_coordinator_again(&mut self) -> Result<(), LocalError> {
        let listen = self.url.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.coordinator = Self::spawn_coordinator(&self.opts, &self.postgres.url(), &listen, &self.store_url)?;
            match self.wait_for_coordinator() {
                Ok(_) => return Ok(()),
                // The port may linger for a moment after a kill.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "coordinator restart; trying again");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_for_coordinator(&mut self) -> Result<String, LocalError> {
        let addr_file = self.opts.dir.join("coordinator.addr");
        let addr_file = addr_file.as_path();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(a) = std::fs::read_to_string(addr_file) {
                if a.ends_with('\n') {
                    return Ok(format!("http://{}", a.trim()));
                }
            }
            if self.coordinator.exited() {
                let log = std::fs::read_to_string(self.opts.dir.join("logs/coordinator.log")).unwrap_or_default();
                return Err(LocalError::Cluster(format!("the coordinator exited at start:\n{log}")));
            }
            if Instant::now() > deadline {
                return Err(LocalError::Cluster("the coordinator did not start within 60 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts worker number `i` (its log is `logs/worker-<i>.log`).
    pub fn add_worker(&mut self, i: usize) -> Result<(), LocalError> {
        self.add_worker_with(i, &[])
    }

    /// Starts worker number `i` with `extra` flags (`--stop-grace 0s`, say).
    pub fn add_worker_with(&mut self, i: usize, extra: &[&str]) -> Result<(), LocalError> {
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--coordinator".into(),
            self.url.clone(),
            "--store".into(),
            self.store_url.clone(),
            "--threads".into(),
            self.opts.threads.to_string(),
            "--name".into(),
            format!("worker-{i}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let w = Proc::spawn(
            &format!("worker-{i}"),
            &self.opts.bin,
            &args,
            // Workers get what they need, not the admin token.
            &self.opts.env.iter().filter(|(k, _)| !k.starts_with("JAGGED_ADMIN_TOKEN")).cloned().collect::<Vec<_>>(),
            &self.opts.dir.join(format!("logs/worker-{i}.log")),
        )?;
        if i < self.workers.len() {
            self.workers[i] = w;
        } else {
            self.workers.push(w);
        }
        Ok(())
    }

    /// Stops workers, then the coordinator, then PostgreSQL.
    pub fn stop(mut self) {
        for w in &mut self.workers {
            w.terminate(Duration::from_secs(10));
        }
        self.coordinator.terminate(Duration::from_secs(10));
    }
}
