//! Reporting a shard's outcome: its part written to the store and committed,
//! its failure reported, or the shard handed back by a stopping worker.

use crate::commits::Committer;
use crate::compute::{Busy, ShardOutput};
use crate::execute::Computed;
use crate::failure::Failure;
use crate::heartbeat::Lost;
use crate::metrics::{self, WorkerMetrics};
use crate::rpc::{retry, Client};
use crate::WorkerConfig;
use jagged_proto::v1::{CompleteRequest, FailRequest};
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a shard's outcome could not be reported (logged; the lease then expires
/// and the shard is retried).
#[derive(Debug, thiserror::Error)]
#[error("complete failed: {}", .0.message())]
pub(crate) struct ReportError(tonic::Status);

/// The lease a shard ran under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease {
    pub sweep: i64,
    pub shard: i64,
    pub epoch: i64,
    pub attempt: i32,
}

/// What reporting a shard's outcome needs.
pub(crate) struct Reporter<'a> {
    pub config: &'a WorkerConfig,
    pub client: &'a Client,
    pub committer: &'a Committer,
    pub worker_id: i64,
    pub stop: &'a AtomicBool,
    pub lost: &'a Lost,
    /// The attempt's busy time.
    pub busy: &'a Busy,
    pub model_name: &'a str,
}

impl Reporter<'_> {
    /// Reports a shard's outcome: uploads its part and commits it, reports the
    /// failed attempt (a part the store would not take, with the store's
    /// error), or hands the shard back when this worker stopped before it ended.
    /// `written` is dropped once the part is written (or will not be).
    pub(crate) async fn report(
        &self,
        lease: Lease,
        model_key: String,
        outcome: Result<Option<Computed>, Failure>,
        started: Instant,
        written: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), ReportError> {
        let m = &self.config.metrics;
        let computed = match outcome {
            Ok(Some(c)) => c,
            Ok(None) if self.lost.lock().unwrap().contains(&(lease.shard, lease.epoch)) => {
                m.ended("abandoned");
                tracing::warn!(shard = lease.shard, "lease lost; shard abandoned");
                return Ok(());
            }
            // Stopped before it finished: hand it back so another worker takes it now.
            Ok(None) => return self.hand_back(lease).await,
            Err(failure) => {
                m.ended("failed");
                return self.fail(lease, failure).await;
            }
        };
        let Computed { out, part, sha256, stored } = computed;
        let key = jagged_artifacts::part_key(lease.sweep, lease.shard, lease.attempt, lease.epoch);
        let stored = self.store(&key, part, stored, lease, out.provider).await;
        drop(written);
        match stored {
            Ok(true) => {}
            Ok(false) => {
                m.ended("abandoned");
                tracing::warn!(shard = lease.shard, "lease lost while the part was being written; shard abandoned");
                return Ok(());
            }
            Err(e) => {
                m.ended("failed");
                return self.fail(lease, Failure { message: format!("writing the result part `{key}`: {e}"), retryable: true }).await;
            }
        }
        self.commit(lease, model_key, key, sha256, out, started).await
    }

    /// Writes the part under `key`, unless the compute thread wrote it already
    /// (`stored`: the seconds it took). `Ok(false)`: the lease was lost first.
    async fn store(
        &self,
        key: &str,
        part: bytes::Bytes,
        stored: Option<f64>,
        lease: Lease,
        provider: &str,
    ) -> Result<bool, jagged_artifacts::ArtifactError> {
        let device = self.config.engine.device.to_string();
        if let Some(secs) = stored {
            // Written by the compute thread (a local store): its bytes need not
            // wait here for the commit.
            drop(part);
            self.config.metrics.stage("write", &device, provider, secs);
            return Ok(true);
        }
        let writing = Instant::now();
        let stored = write_part(self.config, key, part, (lease.shard, lease.epoch), self.lost).await;
        self.config.metrics.stage("write", &device, provider, writing.elapsed().as_secs_f64());
        stored
    }

    /// Commits a written part under its lease, and records how it went.
    async fn commit(
        &self,
        lease: Lease,
        model_key: String,
        key: String,
        sha256: String,
        out: ShardOutput,
        started: Instant,
    ) -> Result<(), ReportError> {
        let (t, provider, rows) = (out.timing, out.provider, out.rows as i64);
        let (inferences, taken, render, failed_items) = (out.inferences, out.taken, out.render, out.failed.len() as u64);
        let req = CompleteRequest {
            worker_id: self.worker_id,
            shard_id: lease.shard,
            lease_epoch: lease.epoch,
            object_key: key,
            rows,
            sha256,
            failed_items: out.failed.into_iter().map(Into::into).collect(),
            execution_provider: provider.into(),
            seconds: started.elapsed().as_secs_f64(),
            model_key,
            busy_seconds: t.run_secs,
            precision: out.precision.clone(),
            runtime: jagged_infer::runtime_version(),
            next_ring: out.next_ring.iter().map(|&(index, reference_top1)| jagged_proto::v1::NextRingItem { index, reference_top1 }).collect(),
        };
        let m = &self.config.metrics;
        let device = self.config.engine.device.to_string();
        let committing = Instant::now();
        let committed = self.committer.commit(req).await;
        m.stage("commit", &device, provider, committing.elapsed().as_secs_f64());
        record_stages(m, &device, provider, &out.timing);
        let on = metrics::DeviceLabel { device: device.clone(), provider: provider.into() };
        match committed {
            Ok(_) => {
                m.ended("committed");
                let label =
                    metrics::InferenceLabel { sweep: lease.sweep.to_string(), model: self.model_name.into(), device, provider: provider.into() };
                m.inferences.get_or_create(&label).inc_by(inferences as u64);
                m.items_failed.get_or_create(&on).inc_by(failed_items);
                tracing::info!(
                    shard = lease.shard,
                    rows,
                    inferences,
                    taken,
                    secs = started.elapsed().as_secs_f64(),
                    prepare = t.prepare_secs,
                    infer = t.run_secs,
                    starved = t.starved_secs,
                    finish = t.finish_secs,
                    render,
                    "shard committed"
                )
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                m.ended("stale");
                tracing::warn!(shard = lease.shard, "commit refused: lease is stale; the part is ignored")
            }
            Err(s) => return Err(ReportError(s)),
        }
        Ok(())
    }

    /// Reports a failed attempt (requeued with backoff, or failed for good after
    /// the sweep's attempts).
    async fn fail(&self, lease: Lease, failure: Failure) -> Result<(), ReportError> {
        let shard = lease.shard;
        tracing::warn!(shard, error = %failure.message, retryable = failure.retryable, "shard failed");
        let req = FailRequest {
            worker_id: self.worker_id,
            shard_id: shard,
            lease_epoch: lease.epoch,
            error: failure.message,
            retryable: failure.retryable,
            handed_back: false,
            busy_seconds: self.busy.seconds(),
        };
        let reported = retry("fail", &self.config.coordinator, self.stop, || {
            let mut c = self.client.clone();
            let req = req.clone();
            async move { c.fail(req).await }
        })
        .await;
        if let Err(s) = reported {
            // A stale lease needs no report; anything else is left to the reaper.
            tracing::warn!(shard, error = %s.message(), "failure report refused");
        }
        Ok(())
    }

    /// Hands a shard this stopping worker will not finish back to the coordinator
    /// (one try: if it fails, the lease expires and the reaper requeues it).
    async fn hand_back(&self, lease: Lease) -> Result<(), ReportError> {
        let req = FailRequest {
            worker_id: self.worker_id,
            shard_id: lease.shard,
            lease_epoch: lease.epoch,
            error: String::new(),
            retryable: true,
            handed_back: true,
            busy_seconds: self.busy.seconds(),
        };
        self.config.metrics.ended("handed_back");
        match self.client.clone().fail(req).await {
            Ok(_) => tracing::info!(shard = lease.shard, "stopping: shard handed back unfinished"),
            Err(s) => tracing::warn!(shard = lease.shard, error = %jagged_proto::cause(&s), "could not hand the shard back; its lease will expire"),
        }
        Ok(())
    }
}

/// The seconds of each stage of a shard's computation, and the device's busy time.
fn record_stages(m: &WorkerMetrics, device: &str, provider: &str, t: &crate::compute::Timing) {
    for (stage, secs) in
        [("fetch", t.fetch_secs), ("decode", t.prepare_secs), ("render", t.starved_secs), ("inference", t.run_secs), ("metrics", t.finish_secs)]
    {
        m.stage(stage, device, provider, secs);
    }
    let on = metrics::DeviceLabel { device: device.to_string(), provider: provider.into() };
    m.busy_seconds.get_or_create(&on).inc_by(t.run_secs);
}

/// Writes a result part, retrying any store error with backoff (up to 5 s
/// apart) for `config.store_retry` while the lease holds (the heartbeat keeps
/// renewing it meanwhile). `Ok(false)`: the lease was lost first.
async fn write_part(
    config: &WorkerConfig,
    key: &str,
    part: bytes::Bytes,
    (shard, epoch): (i64, i64),
    lost: &Mutex<HashSet<(i64, i64)>>,
) -> Result<bool, jagged_artifacts::ArtifactError> {
    let deadline = Instant::now() + config.store_retry;
    let mut delay = Duration::from_millis(100);
    loop {
        match jagged_artifacts::put(config.store.as_ref(), key, part.clone()).await {
            Ok(()) => return Ok(true),
            Err(_) if lost.lock().unwrap().contains(&(shard, epoch)) => return Ok(false),
            Err(e) if Instant::now() + delay < deadline => {
                tracing::warn!(shard, error = %e, retry_in_ms = delay.as_millis() as u64, "the store did not take the result part; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
