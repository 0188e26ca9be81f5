//! The rules admin clients call: submit a sweep (planned into shards, with
//! finished pairs adopted and wider grids taking earlier rows), its status,
//! the list of sweeps, retry and cancel.

use crate::Coordinator;
use jagged_domain::plan::plan_sized;
use jagged_domain::spec::{ImageRef, ResolvedModel, ResolvedSweep};
use jagged_domain::status::{ShardError, Submitted, SweepState, SweepStatus};
use jagged_domain::transform::Family;
use jagged_proto::ServiceError;
use jagged_store::now_ms;
use sha2::Digest;

/// Committed shards of a model whose throughput sizes new shards.
pub const RATE_WINDOW: i64 = 50;

/// A sweep as a client submits it.
pub struct Submission {
    /// The resolved sweep (models and images by content).
    pub sweep: ResolvedSweep,
    /// The spec file as written, kept with the sweep.
    pub spec_toml: String,
    /// Prices per device-hour for this sweep, by device kind.
    pub prices: jagged_domain::cost::Prices,
    /// Run again even what an earlier sweep computed (no adoption, no reuse
    /// of the same sweep).
    pub again: bool,
}

/// Everything one sweep's dashboard page shows.
pub struct SweepDetail {
    /// Its status.
    pub status: SweepStatus,
    /// Its models' names.
    pub models: Vec<String>,
    /// Its families' labels.
    pub families: Vec<String>,
    /// Progress by model.
    pub by_model: Vec<jagged_store::ModelProgress>,
    /// Live workers.
    pub workers: Vec<jagged_store::LiveWorker>,
    /// Its failed items (the first hundred).
    pub failed_items: Vec<jagged_store::CommittedFailure>,
    /// What its attempts spent, with its prices.
    pub spent: Vec<jagged_store::Spent>,
    /// The prices that apply to it.
    pub prices: jagged_domain::cost::Prices,
}

impl Coordinator {
    /// Checks and plans a sweep and stores it with its shards (or finds the
    /// same sweep stored before); pairs other sweeps finished are adopted.
    pub async fn submit(&self, s: Submission) -> Result<Submitted, ServiceError> {
        let sweep = s.sweep;
        sweep.validate().map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let rates = self.measured_rates(&sweep).await?;
        let shards = plan_sized(&sweep, &rates);
        // Content identity: the resolved sweep names models and images by their
        // SHA-256, so the same spec over the same files hashes the same.
        let canonical = serde_json::to_vec(&sweep).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hash = hex::encode(sha2::Sha256::digest(&canonical));
        let keys = pair_keys(&sweep).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let inserted =
            self.store.insert_sweep_once(&s.spec_toml, &sweep, &shards, Some(&hash), &keys, !s.again).await.map_err(|e| self.store_err(e))?;
        let (id, existing) = (inserted.id, inserted.existing);
        self.resync_share();
        if !s.prices.is_empty() {
            self.store.set_prices(id, &s.prices).await.map_err(|e| self.store_err(e))?;
        }
        let reused: u32 = inserted.adopted.iter().map(|a| a.shards).sum();
        let planned = shards.iter().filter(|s| !inserted.adopted.iter().any(|a| (a.model_idx, a.family_idx) == (s.model, s.family))).count();
        if existing {
            tracing::info!(sweep = id, name = %sweep.spec.name, "the same sweep was submitted again; returning the existing one");
        } else {
            log_reuse(id, &sweep, &inserted);
            tracing::info!(sweep = id, name = %sweep.spec.name, shards = planned, reused, "sweep submitted");
        }
        let sorted = |mut v: Vec<i64>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let widened = &inserted.widened;
        Ok(Submitted {
            sweep_id: id,
            shards: planned as u32 + reused,
            existing,
            reused_shards: reused,
            reused_inferences: inserted.adopted.iter().map(|a| a.inferences).sum::<i64>() as u64,
            reused_from: sorted(inserted.adopted.iter().map(|a| a.from_sweep).collect()),
            widened_pairs: widened.len() as u32,
            widened_inferences: widened.iter().map(|w| w.inferences).sum::<i64>() as u64,
            widened_full: widened.iter().map(|w| w.full).sum::<i64>() as u64,
            widened_from: sorted(widened.iter().map(|w| w.from_sweep).collect()),
        })
    }

    /// Each model's measured inferences per second, for sizing its shards: over
    /// its last [`RATE_WINDOW`] committed shards, the rate of the execution
    /// provider that ran most of them (the fleet's usual device kind). Only
    /// asked when the spec does not fix the images per shard.
    async fn measured_rates(&self, sweep: &ResolvedSweep) -> Result<Vec<Option<f64>>, ServiceError> {
        let mut out = Vec::with_capacity(sweep.models.len());
        for m in &sweep.models {
            if sweep.spec.shard.images.is_some() {
                out.push(None);
                continue;
            }
            let by_provider = self.store.throughput(&m.key, RATE_WINDOW).await.map_err(|e| self.store_err(e))?;
            let best = by_provider.into_iter().max_by(|a, b| a.shards.cmp(&b.shards).then(b.provider.cmp(&a.provider)));
            if let Some(b) = &best {
                tracing::info!(model = %m.name, provider = %b.provider, per_sec = b.per_sec, shards = b.shards, "sizing shards from measured throughput");
            }
            out.push(best.map(|b| b.per_sec));
        }
        Ok(out)
    }

    /// A sweep's progress, throughput, errors and cost.
    pub async fn status(&self, id: i64) -> Result<SweepStatus, ServiceError> {
        let s = self.store.sweep(id).await.map_err(|e| self.store_err(e))?;
        let leased = self.store.leased_count(id).await.map_err(|e| self.store_err(e))? as u32;
        let errors = self.store.shard_errors(id, 20).await.map_err(|e| self.store_err(e))?;
        let item_failures = if s.failed_items > 0 { self.store.failure_reasons(id, 10).await.map_err(|e| self.store_err(e))? } else { vec![] };
        let alive = self.store.workers_alive(now_ms() - 3 * self.config.policy.heartbeat_ms).await.map_err(|e| self.store_err(e))?;
        // The resolved sweep (its image list can be large) only to name failed shards' models and families.
        let resolved = if errors.is_empty() { None } else { Some(self.resolved(id).await?) };
        let (spent, prices) = self.spent(id).await?;
        let cost = jagged_domain::cost::Totals::of(&spent, &prices);
        let finished = (s.done + s.failed + s.cancelled) as u32;
        let (rate, eta) = {
            let mut all = self.progress.lock().unwrap();
            let p = all.entry(id).or_default();
            p.observe(now_ms(), s.inferences_done);
            let running = s.state == SweepState::Running;
            let eta = if running { p.eta_secs(s.inferences_total - s.inferences_done - s.inferences_failed).unwrap_or(-1.0) } else { 0.0 };
            let rate = if running { p.rate().unwrap_or(0.0) } else { 0.0 };
            if !running {
                all.remove(&id);
            }
            (rate, eta)
        };
        let name_of = |model_idx: i32, family_idx: i32| {
            let r = resolved.as_ref();
            let model = r.and_then(|r| r.models.get(model_idx as usize)).map(|m| m.name.clone()).unwrap_or_default();
            let family = r.and_then(|r| r.spec.families.get(family_idx as usize)).map(|f| f.name().to_string()).unwrap_or_default();
            (model, family)
        };
        Ok(SweepStatus {
            inferences_per_sec: rate,
            eta_secs: eta,
            sweep_id: s.id,
            name: s.name,
            state: s.state,
            priority: s.priority,
            total: s.total as u32,
            queued: (s.total as u32).saturating_sub(finished + leased),
            leased,
            done: s.done as u32,
            failed: s.failed as u32,
            cancelled: s.cancelled as u32,
            inferences_done: s.inferences_done,
            inferences_failed: s.inferences_failed,
            inferences_total: s.inferences_total,
            failed_items: s.failed_items,
            item_failures,
            created_at: s.created_at.to_rfc3339(),
            finished_at: s.finished_at.map(|t| t.to_rfc3339()),
            errors: errors
                .into_iter()
                .map(|e| {
                    let (model, family) = name_of(e.model_idx, e.family_idx);
                    ShardError { shard_id: e.shard_id, model, family, error: e.error }
                })
                .collect(),
            workers_alive: alive as u32,
            busy_seconds: cost.busy_done,
            busy_seconds_lost: cost.busy_lost,
            estimated_cost: cost.cost.unwrap_or(-1.0),
        })
    }

    /// Every sweep's status, oldest first.
    pub async fn list(&self) -> Result<Vec<SweepStatus>, ServiceError> {
        let rows = self.store.sweeps().await.map_err(|e| self.store_err(e))?;
        let mut sweeps = Vec::with_capacity(rows.len());
        for r in rows {
            sweeps.push(self.status(r.id).await?);
        }
        Ok(sweeps)
    }

    /// Requeues a sweep's failed shards (or only `shard`) with fresh attempts.
    pub async fn retry(&self, id: i64, shard: Option<i64>) -> Result<Vec<i64>, ServiceError> {
        let shard_ids = self.store.retry_failed(id, shard, now_ms()).await.map_err(|e| self.store_err(e))?;
        self.resync_share();
        tracing::info!(sweep = id, shards = shard_ids.len(), "failed shards requeued");
        Ok(shard_ids)
    }

    /// Cancels a sweep (committed results stay); its status after.
    pub async fn cancel(&self, id: i64) -> Result<SweepStatus, ServiceError> {
        self.store.cancel(id, now_ms()).await.map_err(|e| self.store_err(e))?;
        self.resync_share();
        tracing::info!(sweep = id, "sweep cancelled");
        self.status(id).await
    }

    /// A sweep's status with its progress by model, live workers, failed
    /// items and cost (what the dashboard shows of one sweep).
    pub async fn detail(&self, id: i64) -> Result<SweepDetail, ServiceError> {
        let status = self.status(id).await?;
        let resolved = self.resolved(id).await?;
        let by_model = self.store.model_progress(id).await.map_err(|e| self.store_err(e))?;
        let workers = self.live_workers().await?;
        let mut failed_items = self.store.failed_items(id).await.map_err(|e| self.store_err(e))?;
        failed_items.truncate(100);
        let (spent, prices) = self.spent(id).await?;
        Ok(SweepDetail {
            status,
            models: resolved.models.iter().map(|m| m.name.clone()).collect(),
            families: (0..resolved.spec.families.len()).map(|i| resolved.spec.family_label(i)).collect(),
            by_model,
            workers,
            failed_items,
            spent,
            prices,
        })
    }
}

/// Logs the pairs a new sweep adopted and those it widened.
fn log_reuse(id: i64, sweep: &ResolvedSweep, inserted: &jagged_store::Inserted) {
    let model_of = |m: u32| sweep.models.get(m as usize).map(|m| m.name.as_str()).unwrap_or("?");
    for a in &inserted.adopted {
        tracing::info!(sweep = id, model = model_of(a.model_idx), family = a.family_idx, from = a.from_sweep, shards = a.shards, "results reused");
    }
    for w in &inserted.widened {
        tracing::info!(
            sweep = id,
            model = model_of(w.model_idx),
            family = w.family_idx,
            from = w.from_sweep,
            inferences = w.inferences,
            full = w.full,
            "grid widened: rows of the earlier grid taken as they are"
        );
    }
}

/// What shapes the rows of one (model, family) pair: the model (its content
/// key, name and card), the family, the items (names, content keys, labels,
/// frames) and the run settings that change rows. Shard sizes, batch sizes and
/// priorities do not; neither do the other pairs of the sweep.
#[derive(serde::Serialize)]
struct PairContent<'a> {
    format: u32,
    model: &'a ResolvedModel,
    family: &'a Family,
    items: &'a [ImageRef],
    keep_probs: bool,
    jpeg_decoder: jagged_domain::image::JpegDecoder,
}

/// The content keys (SHA-256, hex) of every (model, family) pair of `sweep`:
/// two sweeps' pairs with the same exact key have the same rows, so a new
/// sweep adopts a finished pair's parts instead of running it again; pairs
/// with the same key without the extent ([`Family::without_extent`]) differ at
/// most in their grids' extents, so one may take rows from the other.
pub fn pair_keys(sweep: &ResolvedSweep) -> Result<jagged_store::PairKeys, serde_json::Error> {
    let key = |model: &ResolvedModel, family: &Family, f: usize| -> Result<String, serde_json::Error> {
        let content = PairContent {
            format: 1,
            model,
            family,
            items: sweep.items(f),
            keep_probs: sweep.spec.run.keep_probs,
            jpeg_decoder: sweep.spec.run.jpeg_decoder,
        };
        Ok(hex::encode(sha2::Sha256::digest(serde_json::to_vec(&content)?)))
    };
    let mut keys = jagged_store::PairKeys::default();
    for model in &sweep.models {
        let (mut exact, mut wide) = (Vec::new(), Vec::new());
        for (f, family) in sweep.spec.families.iter().enumerate() {
            exact.push(key(model, family, f)?);
            wide.push(family.without_extent().map(|w| key(model, &w, f)).transpose()?);
        }
        keys.exact.push(exact);
        keys.wide.push(wide);
    }
    Ok(keys)
}
