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

/// Runs the coordinator until SIGINT or SIGTERM (it then drains in-flight calls).
pub async fn run(a: CoordinatorArgs) -> Result<()> {
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
    let store = connect_db(&a.db.database_url, true).await?;
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), worker_token = auth.worker.is_some(), admin_token = auth.admin.is_some(), "coordinator listening");
    if let Some(f) = &a.addr_file {
        std::fs::write(f, format!("{addr}\n")).with_context(|| format!("writing {}", f.display()))?;
    }
    let mut http = jagged_coordinator::Http::default();
    if let Some(m) = a.metrics_listen {
        let l = tokio::net::TcpListener::bind(m).await.with_context(|| format!("binding --metrics-listen {m}"))?;
        tracing::info!(addr = %l.local_addr()?, "metrics at /metrics");
        http.metrics = Some(l);
    }
    if let Some(h) = a.http {
        if auth.admin.is_none() && !h.ip().is_loopback() && !a.insecure {
            bail!("refusing to serve the dashboard on {h} without JAGGED_ADMIN_TOKEN; pass --insecure to allow anyone who reaches it");
        }
        let l = tokio::net::TcpListener::bind(h).await.with_context(|| format!("binding --http {h}"))?;
        let bound = l.local_addr()?;
        tracing::info!(addr = %bound, "dashboard at http://{bound}/");
        if let Some(f) = &a.http_addr_file {
            std::fs::write(f, format!("{bound}\n")).with_context(|| format!("writing {}", f.display()))?;
        }
        let objects = match &a.store {
            Some(s) => Some(crate::args::StoreArg { store: s.clone() }.open()?),
            None => None,
        };
        http.dashboard = Some((l, jagged_coordinator::web::WebConfig { admin: auth.admin.clone(), objects }));
    }
    let policy = jagged_domain::lease::LeasePolicy {
        lease_ms: a.lease_ms,
        heartbeat_ms: a.heartbeat_ms,
        max_lost: a.max_lost_leases,
        max_lost_workers: a.max_lost_workers,
        ..Default::default()
    };
    let config = jagged_coordinator::Config {
        policy,
        reap_interval: Duration::from_millis((a.lease_ms / 4).clamp(100, 5_000) as u64),
        max_message: a.max_message_mb.clamp(1, 2047) * 1024 * 1024,
        prices: a.prices.into_iter().collect(),
    };
    jagged_coordinator::serve(jagged_coordinator::Coordinator::new(store, config), listener, auth, tls, http, crate::shutdown_signal()).await?;
    tracing::info!("coordinator stopped");
    Ok(())
}
