//! The coordinator's admin service: submit, status, list, cancel, and waiting
//! for a sweep to finish.

use crate::resolve::{resolve_with, Overrides};
use crate::{ClientConfig, ClientError};
use jagged_domain::spec::ResolvedSweep;
use jagged_domain::status::{SweepState, SweepStatus};
use jagged_proto::v1::admin_service_client::AdminServiceClient;
use jagged_proto::v1::{CancelRequest, ListRequest, RetryRequest, StatusRequest, SubmitRequest};
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

type Result<T> = std::result::Result<T, ClientError>;

/// The generated client with the admin token attached to every call.
pub type RawAdmin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, jagged_proto::auth::WithToken>>;

/// A connection to the coordinator's admin service.
#[derive(Clone)]
pub struct Admin {
    raw: RawAdmin,
}

pub use jagged_domain::status::Submitted;

impl Admin {
    /// Connects, presenting the configured admin token.
    pub async fn connect(config: &ClientConfig) -> Result<Admin> {
        let with_token = jagged_proto::auth::WithToken::new(config.token.as_ref()).map_err(ClientError::Config)?;
        let url = &config.coordinator;
        let ch = jagged_proto::transport::endpoint(url, config.tls_ca.as_deref())
            .map_err(ClientError::Config)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|cause| ClientError::Connect { url: url.clone(), cause })?;
        check_coordinator(ch.clone(), url).await?;
        let max = jagged_proto::MAX_MESSAGE;
        Ok(Admin { raw: AdminServiceClient::with_interceptor(ch, with_token).max_encoding_message_size(max).max_decoding_message_size(max) })
    }

    /// The generated client, for calls this wrapper does not make.
    pub fn raw(&mut self) -> &mut RawAdmin {
        &mut self.raw
    }

    /// Submits a resolved sweep; `again` runs it even if the same sweep exists.
    pub async fn submit(&mut self, sweep: ResolvedSweep, spec_toml: String, again: bool) -> Result<Submitted> {
        self.submit_priced(sweep, spec_toml, again, &Default::default()).await
    }

    /// [`Admin::submit`] with prices per device-hour by device kind for the
    /// sweep's estimated cost (replacing those given before for the same sweep).
    pub async fn submit_priced(
        &mut self,
        sweep: ResolvedSweep,
        spec_toml: String,
        again: bool,
        prices: &jagged_domain::cost::Prices,
    ) -> Result<Submitted> {
        let prices = prices.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let r = self.raw.submit(SubmitRequest { sweep: Some(sweep.into()), spec_toml, again, prices }).await?.into_inner();
        Ok(r.into())
    }

    /// One sweep's status.
    pub async fn status(&mut self, id: i64) -> Result<SweepStatus> {
        Ok(self.raw.status(StatusRequest { sweep_id: id }).await?.into_inner().try_into()?)
    }

    /// Every sweep's status, oldest first.
    pub async fn list(&mut self) -> Result<Vec<SweepStatus>> {
        let all = self.raw.list(ListRequest {}).await?.into_inner().sweeps;
        Ok(all.into_iter().map(SweepStatus::try_from).collect::<std::result::Result<_, _>>()?)
    }

    /// The newest sweep's id.
    pub async fn latest(&mut self) -> Result<i64> {
        self.list().await?.last().map(|s| s.sweep_id).ok_or_else(|| ClientError::Spec("no sweeps yet".into()))
    }

    /// Requeues a sweep's failed shards (all, or only `shard`) with fresh
    /// attempts; committed results stay. Returns the requeued shards' ids.
    pub async fn retry(&mut self, id: i64, shard: Option<i64>) -> Result<Vec<i64>> {
        Ok(self.raw.retry(RetryRequest { sweep_id: id, shard_id: shard.unwrap_or(0) }).await?.into_inner().shard_ids)
    }

    /// Cancels a sweep; committed results stay.
    pub async fn cancel(&mut self, id: i64) -> Result<SweepStatus> {
        Ok(self.raw.cancel(CancelRequest { sweep_id: id }).await?.into_inner().try_into()?)
    }
}

/// Resolves and uploads a spec (refusing a bad one before any connection), then
/// submits it; says on stderr what was submitted.
pub async fn submit(config: &ClientConfig, spec: &Path, store: &dyn object_store::ObjectStore, over: &Overrides) -> Result<Submitted> {
    let r = resolve_with(spec, store, over).await?;
    for note in &r.notes {
        eprintln!("{note}");
    }
    let (text, resolved) = (r.spec_toml, r.sweep);
    let mut admin = Admin::connect(config).await?;
    let n_images = (0..resolved.spec.families.len()).map(|f| resolved.items(f).len()).max().unwrap_or(0);
    let n_models = resolved.models.len();
    let r = admin.submit_priced(resolved, text, over.again, &over.prices).await?;
    for line in submitted(&r, n_models, n_images) {
        eprintln!("{line}");
    }
    Ok(r)
}

/// Asks the peer at `url` for its gRPC health (a coordinator answers without
/// a token, serving or not): a peer that does not speak gRPC (a dashboard's
/// HTTP port, PostgreSQL) or lacks the service is named as such.
async fn check_coordinator(ch: tonic::transport::Channel, url: &str) -> Result<()> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let asked = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(Duration::from_secs(10), asked).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(s)) if not_grpc(&s) => Err(ClientError::NotCoordinator { url: url.to_string(), cause: jagged_proto::cause(&s) }),
        Ok(Err(s)) => Err(ClientError::Refused(s)),
        Err(_) => Err(ClientError::NotCoordinator { url: url.to_string(), cause: "no gRPC answer within 10 s".into() }),
    }
}

/// Whether a failed call says the peer is not a gRPC server with jagged's
/// services (an HTTP server, another protocol, another gRPC server).
fn not_grpc(s: &tonic::Status) -> bool {
    let m = jagged_proto::cause(s).to_ascii_lowercase();
    s.code() == tonic::Code::Unimplemented
        || ["grpc-status header missing", "h2 protocol error", "broken pipe", "connection reset", "frame", "stream closed"]
            .iter()
            .any(|w| m.contains(w))
}

/// What a submit did, in words: the sweep, and what it took from earlier sweeps.
pub fn submitted(r: &Submitted, n_models: usize, n_images: usize) -> Vec<String> {
    if r.existing {
        return vec![format!(
            "sweep {} already holds this spec over the same models and images; nothing added (pass --again to run it anew)",
            r.sweep_id
        )];
    }
    let mut out = vec![format!("submitted sweep {} ({} shards: {n_models} model(s), {n_images} image(s))", r.sweep_id, r.shards)];
    let list = |v: &[i64]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    if r.reused_shards > 0 {
        out.push(format!(
            "reused {} of its shards ({} inferences) done in sweep(s) {} for the same models, families and images; \
             pass --again to run everything",
            r.reused_shards,
            r.reused_inferences,
            list(&r.reused_from)
        ));
    }
    if r.widened_pairs > 0 {
        // A narrower grid than one computed takes all its rows; a wider one infers the rest.
        let how = if r.widened_inferences == 0 { "narrower than" } else { "wider than" };
        out.push(format!(
            "{} grid(s) {how} those computed in sweep(s) {} take rows from them: {} inferences planned of the {} a full run makes, \
             the other rows taken as they are; pass --again to run everything",
            r.widened_pairs,
            list(&r.widened_from),
            r.widened_inferences,
            r.widened_full
        ));
    }
    out
}

/// One-line progress of a sweep; what is zero is left out.
pub fn line(s: &SweepStatus) -> String {
    let running = s.state == SweepState::Running;
    let pct = if s.inferences_total > 0 { 100.0 * s.inferences_done as f64 / s.inferences_total as f64 } else { 0.0 };
    let mut out = format!("sweep {} [{}] {}: shards {}/{} done", s.sweep_id, s.state, s.name, s.done, s.total);
    if running {
        out += &format!(", {} leased, {} queued", s.leased, s.queued);
    }
    for (n, what) in [(s.failed, "failed"), (s.cancelled, "cancelled")] {
        if n > 0 {
            out += &format!(", {n} {what}");
        }
    }
    out += &format!("; inferences {}/{} ({pct:.0}%)", s.inferences_done, s.inferences_total);
    if s.inferences_failed > 0 {
        out += &format!(", {} could not run", s.inferences_failed);
    }
    if s.failed_items > 0 {
        out += &format!("; failed items {}", s.failed_items);
    }
    if running {
        out += &format!("; workers {}", s.workers_alive);
    }
    out + &spent(s) + &pace(s)
}

/// The failed items by reason, one line each, most first: `  3 items: decode:
/// empty file (e.g. a.jpg)`; a sweep that ended with no result at all says so first.
pub fn item_failures(s: &SweepStatus) -> Vec<String> {
    let mut out = Vec::new();
    if s.state == SweepState::Failed && s.failed == 0 && s.inferences_done == 0 && s.inferences_total > 0 {
        out.push(format!("  no result: none of the {} inferences could run", s.inferences_total));
    }
    let shown: i64 = s.item_failures.iter().map(|f| f.count).sum();
    for f in &s.item_failures {
        let items = if f.count == 1 { "item" } else { "items" };
        out.push(format!("  {} {items} failed: {} (e.g. {})", f.count, f.reason, f.example));
    }
    if shown < s.failed_items && !s.item_failures.is_empty() {
        out.push(format!("  {} more items failed for other reasons", s.failed_items - shown));
    }
    out
}

/// `; device 12.3 s (+0.8 s lost), est. cost 0.0012` once attempts spent
/// device time: busy seconds of committed attempts, of those that failed, were
/// handed back or abandoned, and the estimated cost when every kind is priced.
fn spent(s: &SweepStatus) -> String {
    if s.busy_seconds <= 0.0 && s.busy_seconds_lost <= 0.0 {
        return String::new();
    }
    let mut out = format!("; device {:.1} s", s.busy_seconds);
    if s.busy_seconds_lost > 0.0 {
        out += &format!(" (+{:.1} s lost)", s.busy_seconds_lost);
    }
    if s.estimated_cost >= 0.0 {
        out += &format!(", est. cost {:.4}", s.estimated_cost);
    }
    out
}

/// The short form a progress bar shows beside itself, most telling first (the
/// bar shows the inferences): `ETA 0:01:12 · 165/s · shards 3/5 · 1 failed · 4 workers`.
pub fn brief(s: &SweepStatus) -> String {
    let mut parts = Vec::new();
    if s.state == SweepState::Running && s.inferences_per_sec > 0.0 {
        if s.eta_secs >= 0.0 {
            parts.push(format!("ETA {}", clock(s.eta_secs)));
        }
        parts.push(format!("{:.0}/s", s.inferences_per_sec));
    }
    parts.push(format!("shards {}/{}", s.done, s.total));
    for (n, what) in [(i64::from(s.failed), "failed"), (i64::from(s.cancelled), "cancelled"), (s.failed_items, "failed items")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if s.state == SweepState::Running {
        let n = s.workers_alive;
        parts.push(format!("{n} worker{}", if n == 1 { "" } else { "s" }));
    }
    parts.join(" · ")
}

/// `1:02:03` for a number of seconds.
fn clock(secs: f64) -> String {
    let t = secs.round() as u64;
    format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// `; 165 inferences/s, ETA 0:01:12` for a running sweep whose pace is known.
fn pace(s: &SweepStatus) -> String {
    if s.state != SweepState::Running || s.inferences_per_sec <= 0.0 {
        return String::new();
    }
    let eta = if s.eta_secs >= 0.0 { format!(", ETA {}", clock(s.eta_secs)) } else { String::new() };
    format!("; {:.0} inferences/s{eta}", s.inferences_per_sec)
}

/// Polls a sweep until it is no longer running, calling `progress` with every
/// status; returns the final one. Coordinator hiccups are retried (a restart
/// does not end the wait) for up to a minute.
pub async fn wait(config: &ClientConfig, id: i64, mut progress: impl FnMut(&SweepStatus)) -> Result<SweepStatus> {
    let mut failures = 0;
    loop {
        let st = match Admin::connect(config).await {
            Ok(mut c) => c.status(id).await,
            Err(e) => Err(e),
        };
        match st {
            Ok(s) => {
                failures = 0;
                progress(&s);
                if s.state != SweepState::Running {
                    return Ok(s);
                }
            }
            Err(e) => {
                failures += 1;
                if failures > 60 {
                    return Err(ClientError::Unreachable(Box::new(e)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: SweepState, rate: f64, eta: f64) -> SweepStatus {
        SweepStatus {
            sweep_id: 7,
            name: "n".into(),
            state,
            priority: 0,
            total: 4,
            queued: 1,
            leased: 1,
            done: 2,
            failed: 0,
            cancelled: 0,
            inferences_done: 50,
            inferences_failed: 0,
            inferences_total: 100,
            failed_items: 0,
            item_failures: vec![],
            created_at: String::new(),
            finished_at: None,
            errors: vec![],
            workers_alive: 2,
            inferences_per_sec: rate,
            eta_secs: eta,
            busy_seconds: 0.0,
            busy_seconds_lost: 0.0,
            estimated_cost: -1.0,
        }
    }

    #[test]
    fn status_lines_show_pace_only_while_running() {
        let l = line(&status(SweepState::Running, 165.0, 72.0));
        assert!(l.starts_with("sweep 7 [running] n: shards 2/4 done") && l.ends_with("; 165 inferences/s, ETA 0:01:12"), "{l}");
        assert!(line(&status(SweepState::Running, 165.0, -1.0)).ends_with("; 165 inferences/s"));
        assert!(line(&status(SweepState::Done, 165.0, 72.0)).ends_with("inferences 50/100 (50%)"));
    }

    #[test]
    fn a_narrowed_grid_is_not_called_widened() {
        let r = Submitted { sweep_id: 9, shards: 4, widened_pairs: 1, widened_from: vec![3], widened_full: 50, ..Default::default() };
        let lines = submitted(&r, 1, 5);
        assert_eq!(lines[0], "submitted sweep 9 (4 shards: 1 model(s), 5 image(s))");
        assert!(
            lines[1].starts_with("1 grid(s) narrower than those computed in sweep(s) 3 take rows from them: 0 inferences planned of the 50"),
            "{lines:?}"
        );
        let r = Submitted { widened_inferences: 20, ..r };
        assert!(submitted(&r, 1, 5)[1].starts_with("1 grid(s) wider than those computed in sweep(s) 3"), "{:?}", submitted(&r, 1, 5));
    }

    #[test]
    fn status_lines_count_what_failed_apart() {
        let mut s = status(SweepState::Failed, 0.0, 0.0);
        (s.done, s.failed, s.inferences_failed, s.failed_items) = (3, 1, 30, 2);
        assert_eq!(line(&s), "sweep 7 [failed] n: shards 3/4 done, 1 failed; inferences 50/100 (50%), 30 could not run; failed items 2");
    }

    #[test]
    fn status_lines_show_device_time_and_cost_once_spent() {
        let mut s = status(SweepState::Done, 0.0, 0.0);
        (s.busy_seconds, s.busy_seconds_lost) = (12.34, 0.0);
        assert!(line(&s).ends_with("(50%); device 12.3 s"), "{}", line(&s));
        (s.busy_seconds_lost, s.estimated_cost) = (0.8, 0.00125);
        assert!(line(&s).ends_with("; device 12.3 s (+0.8 s lost), est. cost 0.0013"), "{}", line(&s));
    }
}
