//! `jagged sweep ...`: talk to the coordinator's admin service.

use anyhow::{Context, Result};
use jagged_proto::v1::admin_service_client::AdminServiceClient;
use jagged_proto::v1::*;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

/// An admin client, with the admin token when one is set.
pub type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, jagged_proto::auth::WithToken>>;

/// Connects to the coordinator's admin service, presenting `JAGGED_ADMIN_TOKEN`
/// (or the token in the file `JAGGED_ADMIN_TOKEN_FILE` names) when set.
pub async fn connect(url: &str) -> Result<Admin> {
    let token = jagged_proto::auth::Token::from_env("JAGGED_ADMIN_TOKEN").map_err(anyhow::Error::msg)?;
    connect_with(url, token.as_ref()).await
}

/// Connects to the coordinator's admin service with an explicit token.
pub async fn connect_with(url: &str, token: Option<&jagged_proto::auth::Token>) -> Result<Admin> {
    let with_token = jagged_proto::auth::WithToken::new(token).map_err(anyhow::Error::msg)?;
    let ch = jagged_proto::transport::endpoint(url)
        .map_err(anyhow::Error::msg)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {url} (start one with `jagged coordinator`, or set JAGGED_COORDINATOR)"))?;
    Ok(AdminServiceClient::with_interceptor(ch, with_token).max_encoding_message_size(256 * 1024 * 1024).max_decoding_message_size(256 * 1024 * 1024))
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

/// Resolves and uploads a spec (refusing a bad one before any connection), then
/// submits it to the coordinator at `url`; returns the sweep id.
pub async fn submit(url: &str, spec: &Path, store: &dyn object_store::ObjectStore) -> Result<i64> {
    submit_with(url, spec, store, &crate::resolve::Overrides::default()).await
}

/// [`submit`] with command-line overrides of the spec.
pub async fn submit_with(url: &str, spec: &Path, store: &dyn object_store::ObjectStore, over: &crate::resolve::Overrides) -> Result<i64> {
    let token = jagged_proto::auth::Token::from_env("JAGGED_ADMIN_TOKEN").map_err(anyhow::Error::msg)?;
    Ok(submit_as(url, token.as_ref(), spec, store, over).await?.sweep_id)
}

/// [`submit_with`] with an explicit admin token; returns the coordinator's answer
/// (`existing` when the same sweep was there already and nothing was added).
pub async fn submit_as(
    url: &str,
    token: Option<&jagged_proto::auth::Token>,
    spec: &Path,
    store: &dyn object_store::ObjectStore,
    over: &crate::resolve::Overrides,
) -> Result<SubmitResponse> {
    let (text, resolved) = crate::resolve::resolve_with(spec, store, over).await?;
    let mut client = connect_with(url, token).await?;
    let n_images = (0..resolved.spec.families.len()).map(|f| resolved.items(f).len()).max().unwrap_or(0);
    let n_models = resolved.models.len();
    let req = SubmitRequest { resolved_json: serde_json::to_string(&resolved)?, spec_toml: text, again: over.again };
    let r = client.submit(req).await.map_err(status_err)?.into_inner();
    if r.existing {
        eprintln!("sweep {} already holds this spec over the same models and images; nothing added (pass --again to run it anew)", r.sweep_id);
    } else {
        eprintln!("submitted sweep {} ({} shards: {n_models} model(s), {n_images} image(s))", r.sweep_id, r.shards);
    }
    Ok(r)
}

/// One-line progress of a sweep.
pub fn line(s: &SweepStatus) -> String {
    let pct = if s.inferences_total > 0 { 100.0 * s.inferences_done as f64 / s.inferences_total as f64 } else { 0.0 };
    format!(
        "sweep {} [{}] {}: shards {}/{} done, {} leased, {} queued, {} failed, {} cancelled; inferences {}/{} ({pct:.0}%); failed items {}; workers {}",
        s.sweep_id, s.state, s.name, s.done, s.total, s.leased, s.queued, s.failed, s.cancelled, s.inferences_done, s.inferences_total, s.failed_items, s.workers_alive
    ) + &pace(s)
}

/// `; 165 inferences/s, ETA 0:01:12` for a running sweep whose pace is known.
fn pace(s: &SweepStatus) -> String {
    if s.state != "running" || s.inferences_per_sec <= 0.0 {
        return String::new();
    }
    let eta = if s.eta_secs >= 0.0 {
        let t = s.eta_secs.round() as u64;
        format!(", ETA {}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
    } else {
        String::new()
    };
    format!("; {:.0} inferences/s{eta}", s.inferences_per_sec)
}

/// Prints a status with its shard errors.
pub fn print(s: &SweepStatus) {
    println!("{}", line(s));
    for e in &s.errors {
        println!("  shard {} ({} / {}) failed: {}", e.shard_id, e.model, e.family, e.error);
    }
}

/// Fetches one sweep's status.
pub async fn status(client: &mut Admin, id: i64) -> Result<SweepStatus> {
    Ok(client.status(StatusRequest { sweep_id: id }).await.map_err(status_err)?.into_inner())
}

/// The newest sweep's id.
pub async fn latest(client: &mut Admin) -> Result<i64> {
    let l = client.list(ListRequest {}).await.map_err(status_err)?.into_inner();
    l.sweeps.last().map(|s| s.sweep_id).context("no sweeps yet")
}

/// Lists all sweeps.
pub async fn list(client: &mut Admin) -> Result<Vec<SweepStatus>> {
    Ok(client.list(ListRequest {}).await.map_err(status_err)?.into_inner().sweeps)
}

/// Cancels a sweep.
pub async fn cancel(client: &mut Admin, id: i64) -> Result<SweepStatus> {
    Ok(client.cancel(CancelRequest { sweep_id: id }).await.map_err(status_err)?.into_inner())
}

/// Shows progress until the sweep is no longer running; returns the final status.
/// Coordinator hiccups are retried, so a restart does not end the wait.
pub async fn wait(url: &str, id: i64) -> Result<SweepStatus> {
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let mut failures = 0;
    loop {
        let st = match connect(url).await {
            Ok(mut c) => status(&mut c, id).await,
            Err(e) => Err(e),
        };
        match st {
            Ok(s) => {
                failures = 0;
                let l = line(&s);
                if tty {
                    eprint!("\r\x1b[2K{l}");
                    let _ = std::io::stderr().flush();
                } else if l != last {
                    eprintln!("{l}");
                }
                last = l;
                if s.state != "running" {
                    if tty {
                        eprintln!();
                    }
                    return Ok(s);
                }
            }
            Err(e) => {
                failures += 1;
                if failures > 60 {
                    return Err(e.context("coordinator unreachable for a minute"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
