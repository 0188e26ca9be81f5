//! `jagged coordinator`: its configuration (flags and environment) and start.

use crate::args::{connect_db, token, DbArg};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The coordinator's flags (each with its environment variable).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CoordinatorArgs {
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
    /// Lost leases (a worker vanished, or stopped and handed the shard back) a
    /// shard may have before it fails; apart from the sweep's max_attempts,
    /// which counts reported errors only.
    #[arg(long, env = "JAGGED_MAX_LOST_LEASES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    max_lost_leases: u32,
    /// Different workers that vanish one after another holding the same shard
    /// before it fails as one that kills its workers (out of memory, say).
    #[arg(long, env = "JAGGED_MAX_LOST_WORKERS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    max_lost_workers: u32,
    /// TLS certificate (PEM; its chain) for gRPC; with --tls-key, clients connect
    /// with `https://` and check it against JAGGED_TLS_CA.
    #[arg(long, env = "JAGGED_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "JAGGED_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest gRPC message accepted, MiB (a submitted sweep is one message).
    #[arg(long, env = "JAGGED_MAX_MESSAGE_MB", default_value_t = jagged_proto::MAX_MESSAGE >> 20)]
    max_message_mb: usize,
    /// Listen on a non-loopback address without tokens (JAGGED_WORKER_TOKEN and
    /// JAGGED_ADMIN_TOKEN, or their _FILE forms): anyone who reaches it may submit
    /// sweeps and commit results.
    #[arg(long)]
    insecure: bool,
    /// Serve Prometheus metrics at http://<addr>/metrics.
    #[arg(long, env = "JAGGED_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the web dashboard (and /metrics) at this address; it requires the
    /// admin token when one is set.
    #[arg(long, env = "JAGGED_HTTP")]
    http: Option<SocketAddr>,
    /// Write the dashboard's bound address to this file once listening.
    #[arg(long, requires = "http")]
    http_addr_file: Option<PathBuf>,
    /// The object store results are in (a folder, `file://` or `s3://`): the
    /// dashboard then shows finished sweeps' reports.
    #[arg(long = "store", env = "JAGGED_STORE")]
    store: Option<String>,
    /// Price per device-hour of a device kind, for estimated costs (repeat:
    /// `--price cuda=2.50 --price cpu=0.05`); a sweep's own prices override.
    #[arg(long = "price", env = "JAGGED_PRICES", value_delimiter = ',', value_parser = crate::args::price)]
    prices: Vec<(String, f64)>,
}

/// The raw layer: what the flags say, computed and checked, with no I/O.
#[derive(Debug, Clone)]
pub struct Settings {
    args: CoordinatorArgs,
    /// The service's settings (lease timing, message size, prices).
    pub service: jagged_coordinator::Config,
}

impl CoordinatorArgs {
    /// The coordinator's settings from its flags alone.
    pub fn settings(&self) -> Settings {
        let policy = jagged_domain::lease::LeasePolicy {
            lease_ms: self.lease_ms,
            heartbeat_ms: self.heartbeat_ms,
            max_lost: self.max_lost_leases,
            max_lost_workers: self.max_lost_workers,
            ..Default::default()
        };
        let service = jagged_coordinator::Config {
            policy,
            reap_interval: Duration::from_millis((self.lease_ms / 4).clamp(100, 5_000) as u64),
            max_message: self.max_message_mb.clamp(1, 2047) * 1024 * 1024,
            prices: self.prices.iter().cloned().collect(),
        };
        Settings { args: self.clone(), service }
    }
}

/// The resolved layer: tokens and TLS files read, and the checks that need
/// them (no token on a public address is refused unless `--insecure`).
pub struct Resolved {
    settings: Settings,
    auth: jagged_coordinator::Auth,
    tls: Option<tonic::transport::Identity>,
}

impl Settings {
    /// Reads the tokens (`JAGGED_WORKER_TOKEN`, `JAGGED_ADMIN_TOKEN` or their
    /// `_FILE` forms) and the TLS files.
    pub fn resolve(self) -> Result<Resolved> {
        let a = &self.args;
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(tonic::transport::Identity::from_pem(
                std::fs::read(c).with_context(|| format!("reading TLS certificate {}", c.display()))?,
                std::fs::read(k).with_context(|| format!("reading TLS key {}", k.display()))?,
            )),
            _ => None,
        };
        let auth = jagged_coordinator::Auth { worker: token("JAGGED_WORKER_TOKEN")?, admin: token("JAGGED_ADMIN_TOKEN")? };
        if auth.worker.is_some() && auth.worker == auth.admin {
            bail!("JAGGED_WORKER_TOKEN and JAGGED_ADMIN_TOKEN must differ: a worker must not be able to act as an admin");
        }
        if (auth.worker.is_none() || auth.admin.is_none()) && !a.listen.ip().is_loopback() && !a.insecure {
            bail!(
                "refusing to listen on {} without JAGGED_WORKER_TOKEN and JAGGED_ADMIN_TOKEN (or their _FILE forms); \
                 pass --insecure to allow anyone who reaches it",
                a.listen
            );
        }
        if let Some(h) = a.http {
            if auth.admin.is_none() && !h.ip().is_loopback() && !a.insecure {
                bail!("refusing to serve the dashboard on {h} without JAGGED_ADMIN_TOKEN; pass --insecure to allow anyone who reaches it");
            }
        }
        Ok(Resolved { settings: self, auth, tls })
    }
}

/// Binds `addr`, naming the flag in the error; writes the bound address to
/// `file` when given.
async fn bind(addr: SocketAddr, flag: &str, file: Option<&PathBuf>) -> Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {flag} {addr}"))?;
    if let Some(f) = file {
        std::fs::write(f, format!("{}\n", l.local_addr()?)).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(l)
}

/// Runs the coordinator until SIGINT or SIGTERM (it then drains in-flight
/// calls): gRPC on `--listen`, and `/metrics` and the dashboard where asked.
pub async fn run(a: CoordinatorArgs) -> Result<()> {
    let Resolved { settings, auth, tls } = a.settings().resolve()?;
    let a = &settings.args;
    let store = connect_db(&a.db.database_url, true).await?;
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), worker_token = auth.worker.is_some(), admin_token = auth.admin.is_some(), "coordinator listening");
    if let Some(f) = &a.addr_file {
        std::fs::write(f, format!("{addr}\n")).with_context(|| format!("writing {}", f.display()))?;
    }
    let coordinator = jagged_coordinator::Coordinator::new(store, settings.service.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut web = Vec::new();
    if let Some(m) = a.metrics_listen {
        let l = bind(m, "--metrics-listen", None).await?;
        tracing::info!(addr = %l.local_addr()?, "metrics at /metrics");
        web.push(tokio::spawn(jagged_web::serve(l, jagged_web::metrics_router(coordinator.clone()), stopped.clone())));
    }
    if let Some(h) = a.http {
        let l = bind(h, "--http", a.http_addr_file.as_ref()).await?;
        let bound = l.local_addr()?;
        tracing::info!(addr = %bound, "dashboard at http://{bound}/");
        let objects = match &a.store {
            Some(s) => Some(crate::args::StoreArg { store: s.clone() }.open()?),
            None => None,
        };
        match jagged_web::dashboard_router(coordinator.clone(), jagged_web::WebConfig { admin: auth.admin.clone(), objects }) {
            Ok(router) => web.push(tokio::spawn(jagged_web::serve(l, router, stopped.clone()))),
            Err(e) => tracing::error!(error = %e, "the dashboard could not start"),
        }
    }
    let served = jagged_coordinator::serve(coordinator, listener, auth, tls, crate::shutdown_signal()).await;
    let _ = stop.send(true);
    for w in web {
        if let Ok(Err(e)) = w.await {
            tracing::warn!(error = %e, "the HTTP listener ended with an error");
        }
    }
    served?;
    tracing::info!("coordinator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        coordinator: CoordinatorArgs,
    }

    fn settings(args: &[&str]) -> Settings {
        let base = ["coordinator", "--database-url", "postgres://u@127.0.0.1/db"];
        Flags::try_parse_from(base.iter().chain(args).copied()).unwrap().coordinator.settings()
    }

    #[test]
    fn settings_come_from_the_flags_alone() {
        let s = settings(&["--lease-ms", "8000", "--heartbeat-ms", "1000", "--price", "cuda=2.5,cpu=0.05"]);
        let p = &s.service.policy;
        assert_eq!((p.lease_ms, p.heartbeat_ms), (8000, 1000));
        assert_eq!(s.service.reap_interval, Duration::from_millis(2000), "a quarter of the lease");
        assert_eq!(s.service.prices.get("cuda"), Some(&2.5));
        assert_eq!(settings(&["--lease-ms", "100"]).service.reap_interval, Duration::from_millis(100), "at least 100 ms");
        assert_eq!(settings(&["--max-message-mb", "0"]).service.max_message, 1 << 20, "at least 1 MiB");
    }
}
