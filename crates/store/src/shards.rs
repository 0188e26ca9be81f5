//! The `shards` table: planned work, claims, leases, fenced commits, failures
//! and the reaper (`queries/shards/`).

use crate::outputs::Commit;
use crate::{ts, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use jagged_domain::lease::{Counters, Ended, LeasePolicy, ShardState};
use jagged_domain::plan::PlannedShard;
use jagged_domain::spec::ResolvedSweep;

/// A claimed shard.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// Shard id.
    pub id: i64,
    /// Its sweep.
    pub sweep_id: i64,
    /// Index into the sweep's models.
    pub model_idx: i32,
    /// Index into the sweep's families.
    pub family_idx: i32,
    /// First image (inclusive).
    pub image_lo: i32,
    /// Last image (exclusive).
    pub image_hi: i32,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// Lease epoch to present when completing.
    pub lease_epoch: i64,
    /// Lease deadline, ms since epoch.
    pub deadline_ms: i64,
    /// Inferences the shard holds.
    pub inferences: i64,
    /// When it was queued (ready to run), ms since the epoch.
    pub queued_ms: i64,
    /// The ring an adaptive shard searches (0: not adaptive).
    pub ring: u32,
    /// The images of the range it runs, when not all of them (an adaptive
    /// shard's images whose top-1 has not changed yet), each with its top-1
    /// class at the reference point as the first ring found it.
    pub items: Option<Vec<(u32, Option<u32>)>>,
}

/// A failed shard and its last error.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardFailure {
    /// Shard id.
    pub shard_id: i64,
    /// Model index.
    pub model_idx: i32,
    /// Family index.
    pub family_idx: i32,
    /// First image (inclusive).
    pub image_lo: i32,
    /// Last image (exclusive).
    pub image_hi: i32,
    /// Last error.
    pub error: String,
}

/// When a sweep's shards ran: first lease and last finish, ms since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepTiming {
    /// First lease of any shard.
    pub first_start_ms: i64,
    /// Last finish of any shard.
    pub last_finish_ms: i64,
}

/// A shard held under a lease: its id and the epoch it was leased under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Held {
    /// Shard id.
    pub shard: i64,
    /// Lease epoch.
    pub epoch: i64,
    /// Seconds the execution provider has been busy on this attempt so far.
    pub busy: f64,
}

/// How often claims scan a (sweep, model) from its start, at least.
pub const RESCAN_MS: i64 = 10_000;

/// Claim cursors by (sweep, model), shared by a handle's clones.
pub(crate) type Cursors = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(i64, Option<i32>), Cursor>>>;

/// Claims waiting to go together, by (sweep, model), shared by a handle's clones.
pub(crate) type ClaimGroups = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(i64, Option<i32>), std::sync::Arc<ClaimGroup>>>>;

/// Most claim requests leased in one statement.
const MAX_CLAIM_BATCH: usize = 64;

/// One claim request: the worker, how many shards, the time, from which point.
type WantedClaim = (i64, i64, i64, (i32, i64));

/// The claims of one (sweep, model) waiting, and the statement in flight.
pub(crate) type ClaimGroup = crate::group::Group<WantedClaim, Vec<Claimed>>;

/// Where a handle's last claim of a (sweep, model) ended.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    model: i32,
    id: i64,
    rescanned_ms: i64,
}

/// A row of complete.sql: a shard done, or what to add to a sweep's tally.
#[derive(sqlx::FromRow)]
struct PgCompleted {
    kind: String,
    id: i64,
    shards: i32,
    inferences: i64,
    skipped: i64,
    failed: i64,
    added_shards: i32,
    added_inferences: i64,
}

#[derive(sqlx::FromRow)]
struct PgClaimed {
    id: i64,
    sweep_id: i64,
    model_idx: i32,
    family_idx: i32,
    image_lo: i32,
    image_hi: i32,
    attempt: i32,
    lease_epoch: i64,
    leased_until: DateTime<Utc>,
    inferences: i64,
    run_after: DateTime<Utc>,
    ring: i32,
    items: Option<Vec<i32>>,
    refs: Option<Vec<i32>>,
    /// The request of its statement the shard went to (from 1).
    request: i64,
}

impl From<PgClaimed> for Claimed {
    fn from(r: PgClaimed) -> Claimed {
        Claimed {
            id: r.id,
            sweep_id: r.sweep_id,
            model_idx: r.model_idx,
            family_idx: r.family_idx,
            image_lo: r.image_lo,
            image_hi: r.image_hi,
            attempt: r.attempt,
            lease_epoch: r.lease_epoch,
            deadline_ms: r.leased_until.timestamp_millis(),
            inferences: r.inferences,
            queued_ms: r.run_after.timestamp_millis(),
            ring: r.ring as u32,
            items: r.items.map(|items| {
                let refs = r.refs.unwrap_or_default();
                items.into_iter().enumerate().map(|(k, i)| (i as u32, refs.get(k).map(|&c| c as u32))).collect()
            }),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PgFailure {
    id: i64,
    model_idx: i32,
    family_idx: i32,
    image_lo: i32,
    image_hi: i32,
    last_error: String,
}

#[derive(sqlx::FromRow)]
struct PgTiming {
    first_start: Option<i64>,
    last_finish: Option<i64>,
}

/// A locked leased shard, about to be released.
#[derive(sqlx::FromRow)]
struct PgLocked {
    id: i64,
    sweep_id: i64,
    model_idx: i32,
    lease_epoch: i64,
    max_attempts: i32,
    inferences: i64,
    worker_id: Option<i64>,
    failures: i32,
    lost: i32,
    lost_by: Vec<i64>,
    busy_seconds: f64,
    leased_at: Option<DateTime<Utc>>,
}

impl PgLocked {
    fn counters(&self) -> Counters {
        Counters { failures: self.failures.max(0) as u32, lost: self.lost.max(0) as u32, lost_by: self.lost_by.clone() }
    }
}

#[derive(sqlx::FromRow)]
struct PgLease {
    sweep_id: i64,
    attempt: i32,
    lease_epoch: i64,
    state: String,
}

impl Store {
    pub(crate) async fn insert_shards(
        tx: &mut sqlx::PgConnection,
        sweep_id: i64,
        sweep: &ResolvedSweep,
        shards: &[PlannedShard],
        inferences: &[i64],
        keys: &[Option<String>],
        wide: &[Option<String>],
    ) -> Result<()> {
        let chunks = shards.chunks(50_000).zip(inferences.chunks(50_000)).zip(keys.chunks(50_000)).zip(wide.chunks(50_000));
        for (((sh, nn), kk), ww) in chunks {
            sqlx::query(include_str!("../queries/shards/insert.sql"))
                .bind(sweep_id)
                .bind(sh.iter().map(|s| s.model as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.family as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.image_lo as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.image_hi as i32).collect::<Vec<_>>())
                .bind(nn)
                .bind(sweep.spec.priority)
                .bind(sweep.spec.shard.max_attempts as i32)
                .bind(sh.iter().map(|s| s.ring as i32).collect::<Vec<_>>())
                .bind(kk)
                .bind(ww)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// Shards of a sweep currently leased.
    pub async fn leased_count(&self, sweep_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("../queries/shards/count_leased.sql")).bind(sweep_id).fetch_one(&self.pool).await?)
    }

    /// Failed shards of a sweep with their last errors (at most `limit`).
    pub async fn shard_errors(&self, sweep_id: i64, limit: i64) -> Result<Vec<ShardFailure>> {
        let rows: Vec<PgFailure> =
            sqlx::query_as(include_str!("../queries/shards/errors.sql")).bind(sweep_id).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| ShardFailure {
                shard_id: r.id,
                model_idx: r.model_idx,
                family_idx: r.family_idx,
                image_lo: r.image_lo,
                image_hi: r.image_hi,
                error: r.last_error,
            })
            .collect())
    }

    /// First lease start and last finish of a sweep's shards, once any exist.
    pub async fn sweep_timing(&self, sweep_id: i64) -> Result<Option<SweepTiming>> {
        let r: PgTiming = sqlx::query_as(include_str!("../queries/shards/timing.sql")).bind(sweep_id).fetch_one(&self.pool).await?;
        Ok(r.first_start.zip(r.last_finish).map(|(first_start_ms, last_finish_ms)| SweepTiming { first_start_ms, last_finish_ms }))
    }

    /// Claims up to `max` ready shards for `worker` from the running sweeps in
    /// priority order (highest first, then oldest). The coordinator uses
    /// [`Store::claim_from`] with its fair-share order instead.
    pub async fn claim(&self, worker: i64, max: i64, now_ms: i64, policy: &LeasePolicy) -> Result<Vec<Claimed>> {
        let mut running = self.running_sweeps().await?;
        running.sort_by_key(|r| (-(r.priority as i64), r.id));
        for r in running {
            let c = self.claim_from(worker, r.id, None, max, now_ms, policy).await?;
            if !c.is_empty() {
                return Ok(c);
            }
        }
        Ok(vec![])
    }

    /// Claims up to `max` ready shards of one sweep (of one model, if given) for
    /// `worker`: lowest model index, then lowest shard id, first.
    ///
    /// Claims start where this handle's last claim of the same (sweep, model)
    /// ended, so they do not walk the index entries of shards claimed before:
    /// while a long transaction elsewhere holds back PostgreSQL's xmin horizon,
    /// those entries cannot be removed, and a scan from the start would visit
    /// every one of them on every claim. Shards queued again behind the cursor
    /// (retries, lost leases) are found by a scan from the start, made when the
    /// cursor's scan finds fewer than `max`, and at least every
    /// [`RESCAN_MS`] so retries are not left to the end.
    pub async fn claim_from(&self, worker: i64, sweep: i64, model: Option<i32>, max: i64, now_ms: i64, policy: &LeasePolicy) -> Result<Vec<Claimed>> {
        let key = (sweep, model);
        let cursor = self.cursors.lock().unwrap().get(&key).copied();
        let due = cursor.is_none_or(|c| now_ms.saturating_sub(c.rescanned_ms) >= RESCAN_MS || now_ms < c.rescanned_ms);
        let mut out = match cursor {
            Some(c) if !due => self.claim_after(worker, sweep, model, max, now_ms, policy, (c.model, c.id)).await?,
            _ => vec![],
        };
        let rescanned = due || (out.len() as i64) < max;
        if rescanned {
            let more = self.claim_after(worker, sweep, model, max - out.len() as i64, now_ms, policy, (i32::MIN, i64::MIN)).await?;
            out.extend(more);
        }
        // The cursor only moves on: whatever lies behind it is found by the
        // scans from the start. Once a scan from the start finds nothing, the
        // cursor goes (a finished sweep's would stay forever otherwise); the next
        // claim scans from the start, as it would have anyway.
        let mut cursors = self.cursors.lock().unwrap();
        if rescanned && out.is_empty() {
            cursors.remove(&key);
            return Ok(out);
        }
        let entry = cursors.entry(key).or_insert(Cursor { model: i32::MIN, id: i64::MIN, rescanned_ms: now_ms });
        if let Some(last) = out.iter().map(|c| (c.model_idx, c.id)).max() {
            (entry.model, entry.id) = last.max((entry.model, entry.id));
        }
        if rescanned {
            entry.rescanned_ms = now_ms;
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Claims up to `max` shards of one (sweep, model) after the point `after`
    /// for `worker`. Concurrent claims of the same (sweep, model) through this
    /// handle go together ([`crate::group`]): one statement leases them all
    /// (from the earliest point any of them asked for; the shards found go to
    /// the claims in order), so one scan of the index serves them all rather
    /// than each walking past the rows the others hold locked or have just
    /// leased, and one transaction commits them.
    #[allow(clippy::too_many_arguments)]
    async fn claim_after(
        &self,
        worker: i64,
        sweep: i64,
        model: Option<i32>,
        max: i64,
        now_ms: i64,
        policy: &LeasePolicy,
        after: (i32, i64),
    ) -> Result<Vec<Claimed>> {
        let group =
            self.claims.lock().unwrap().entry((sweep, model)).or_insert_with(|| std::sync::Arc::new(ClaimGroup::new("claim statement"))).clone();
        let (store, policy) = (self.clone(), *policy);
        group
            .run((worker, max, now_ms, after), MAX_CLAIM_BATCH, move |wanted| {
                let store = store.clone();
                async move { store.claim_batch(sweep, model, &wanted, &policy).await }
            })
            .await
    }

    /// Leases shards of one (sweep, model) to the claims `wanted` (worker, how
    /// many, time, from which point) in one statement; each claim's shards, in
    /// the order given.
    async fn claim_batch(&self, sweep: i64, model: Option<i32>, wanted: &[WantedClaim], policy: &LeasePolicy) -> Result<Vec<Vec<Claimed>>> {
        let now_ms = wanted.iter().map(|w| w.2).max().unwrap_or(0);
        let after = wanted.iter().map(|w| w.3).min().unwrap_or((i32::MIN, i64::MIN));
        let workers: Vec<i64> = wanted.iter().map(|w| w.0).collect();
        let counts: Vec<i64> = wanted.iter().map(|w| w.1.max(0)).collect();
        let total: i64 = counts.iter().sum();
        let query = match model {
            // Within one model the cursor is an id: before the model, from its start.
            Some(m) => sqlx::query_as(concat!(include_str!("../queries/shards/claim_model.sql"), include_str!("../queries/shards/claim_update.sql")))
                .bind(ts(now_ms))
                .bind(&workers)
                .bind(total)
                .bind(ts(policy.deadline(now_ms)))
                .bind(sweep)
                .bind(m)
                .bind(if after.0 == m { after.1 } else { i64::MIN })
                .bind(&counts),
            None => sqlx::query_as(concat!(include_str!("../queries/shards/claim_from.sql"), include_str!("../queries/shards/claim_update.sql")))
                .bind(ts(now_ms))
                .bind(&workers)
                .bind(total)
                .bind(ts(policy.deadline(now_ms)))
                .bind(sweep)
                .bind(after.0)
                .bind(after.1)
                .bind(&counts),
        };
        let rows: Vec<PgClaimed> = query.fetch_all(&self.pool).await?;
        let mut each: Vec<Vec<Claimed>> = wanted.iter().map(|_| Vec::new()).collect();
        for r in rows {
            let k = (r.request - 1) as usize;
            each.get_mut(k)
                .ok_or_else(|| StoreError::Data(format!("a claim statement returned request {} of {}", r.request, wanted.len())))?
                .push(r.into());
        }
        Ok(each)
    }

    /// Renews the leases `worker` holds; returns the ids of held shards it lost.
    pub async fn heartbeat(&self, worker: i64, held: &[Held], now_ms: i64, policy: &LeasePolicy) -> Result<Vec<i64>> {
        self.touch_worker(worker, now_ms).await?;
        if held.is_empty() {
            return Ok(vec![]);
        }
        let kept: Vec<i64> = sqlx::query_scalar(include_str!("../queries/shards/heartbeat.sql"))
            .bind(worker)
            .bind(held.iter().map(|h| h.shard).collect::<Vec<_>>())
            .bind(held.iter().map(|h| h.epoch).collect::<Vec<_>>())
            .bind(ts(policy.deadline(now_ms)))
            .bind(held.iter().map(|h| h.busy).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
        Ok(held.iter().map(|h| h.shard).filter(|id| !kept.contains(id)).collect())
    }

    /// Commits one shard's output under its lease epoch, with its failed items,
    /// and counts it into the sweep, atomically ([`Store::complete_many`] of one).
    pub async fn complete(&self, commit: Commit, now_ms: i64) -> Result<()> {
        self.complete_many(std::slice::from_ref(&commit), now_ms).await?.remove(0)
    }

    /// Commits many shards in one transaction (one statement, then one tally
    /// per sweep), each fenced by its lease epoch and part key as
    /// [`Store::complete`]; per commit: done, [`StoreError::Stale`] or
    /// [`StoreError::BadKey`]. A database error fails them all (none is written).
    pub async fn complete_many(&self, commits: &[Commit], now_ms: i64) -> Result<Vec<Result<()>>> {
        /// A commit that names its own attempt's part, with what the key says.
        struct Named {
            index: usize,
            sweep: i64,
            attempt: i32,
        }
        let mut results: Vec<Option<Result<()>>> = commits.iter().map(|_| None).collect();
        let mut batch: Vec<Named> = Vec::new();
        let mut later = Vec::new(); // the same shard twice: after this batch
        let mut seen = std::collections::HashSet::new();
        for (i, c) in commits.iter().enumerate() {
            let named = jagged_domain::keys::parse_part_key(&c.out.object_key).filter(|k| k.shard == c.shard && k.epoch == c.epoch);
            match named {
                Some(_) if !seen.insert(c.shard) => later.push(i),
                Some(k) => batch.push(Named { index: i, sweep: k.sweep, attempt: k.attempt }),
                None => {}
            }
        }
        if !batch.is_empty() {
            let of = |n: &Named| &commits[n.index];
            let failed: Vec<(i64, &jagged_domain::task::FailedItem)> =
                batch.iter().flat_map(|n| of(n).failed.iter().map(move |f| (of(n).shard, f))).collect();
            let next: Vec<(i64, u32, u32)> = batch.iter().flat_map(|n| of(n).next_ring.iter().map(move |&(i, r)| (of(n).shard, i, r))).collect();
            let mut tx = self.pool.begin().await?;
            let rows: Vec<PgCompleted> = sqlx::query_as(include_str!("../queries/shards/complete.sql"))
                .bind(batch.iter().map(|n| of(n).shard).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).epoch).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| n.sweep).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| n.attempt).collect::<Vec<i32>>())
                .bind(batch.iter().map(|n| of(n).out.object_key.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.rows).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).out.sha256.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).worker).collect::<Vec<i64>>())
                .bind(batch.iter().map(|n| of(n).out.provider.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.seconds).collect::<Vec<f64>>())
                .bind(batch.iter().map(|n| of(n).out.model_key.clone()).collect::<Vec<Option<String>>>())
                .bind(batch.iter().map(|n| of(n).failed.len() as i64).collect::<Vec<i64>>())
                .bind(ts(now_ms))
                .bind(failed.iter().map(|f| f.0).collect::<Vec<i64>>())
                .bind(failed.iter().map(|f| f.1.index as i32).collect::<Vec<i32>>())
                .bind(failed.iter().map(|f| f.1.name.clone()).collect::<Vec<String>>())
                .bind(failed.iter().map(|f| f.1.reason.clone()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.busy_seconds).collect::<Vec<f64>>())
                .bind(batch.iter().map(|n| of(n).out.precision.clone().unwrap_or_default()).collect::<Vec<String>>())
                .bind(batch.iter().map(|n| of(n).out.runtime.clone().unwrap_or_default()).collect::<Vec<String>>())
                .bind(next.iter().map(|x| x.0).collect::<Vec<i64>>())
                .bind(next.iter().map(|x| x.1 as i32).collect::<Vec<i32>>())
                .bind(next.iter().map(|x| x.2 as i32).collect::<Vec<i32>>())
                .fetch_all(&mut *tx)
                .await?;
            let done: Vec<i64> = rows.iter().filter(|r| r.kind == "shard").map(|r| r.id).collect();
            let changes: Vec<crate::sweeps::Tally> = rows
                .iter()
                .filter(|r| r.kind == "sweep")
                .map(|r| crate::sweeps::Tally {
                    sweep: r.id,
                    total_shards: r.added_shards,
                    inferences_total: r.added_inferences,
                    shards_done: r.shards,
                    inferences_done: r.inferences,
                    inferences_failed: r.skipped,
                    failed_items: r.failed,
                    ..Default::default()
                })
                .collect();
            if !changes.is_empty() {
                Self::tally(&mut tx, &changes, now_ms).await?;
            }
            tx.commit().await?;
            for n in &batch {
                if done.contains(&of(n).shard) {
                    results[n.index] = Some(Ok(()));
                }
            }
        }
        if !later.is_empty() {
            let again: Vec<Commit> = later.iter().map(|&i| commits[i].clone()).collect();
            for (i, r) in later.into_iter().zip(Box::pin(self.complete_many(&again, now_ms)).await?) {
                results[i] = Some(r);
            }
        }
        // Nothing was committed for the rest: a lost lease, or a key other than
        // the attempt's own part.
        let mut out = Vec::with_capacity(commits.len());
        for (c, r) in commits.iter().zip(results) {
            out.push(match r {
                Some(r) => r,
                None => Err(self.refusal(c).await?),
            });
        }
        Ok(out)
    }

    /// Why a commit was not written: a wrong part key for the current lease, or
    /// a stale lease.
    async fn refusal(&self, c: &Commit) -> Result<StoreError> {
        let row: Option<PgLease> = sqlx::query_as(include_str!("../queries/shards/lease_of.sql")).bind(c.shard).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) if r.state == ShardState::Leased.as_str() && r.lease_epoch == c.epoch => {
                let expected = jagged_domain::keys::part_key(r.sweep_id, c.shard, r.attempt, c.epoch);
                let own = jagged_domain::keys::PartKey { sweep: r.sweep_id, shard: c.shard, attempt: r.attempt, epoch: c.epoch };
                if jagged_domain::keys::parse_part_key(&c.out.object_key) != Some(own) {
                    StoreError::BadKey { shard: c.shard, key: c.out.object_key.clone(), expected }
                } else {
                    StoreError::Stale(c.shard)
                }
            }
            _ => StoreError::Stale(c.shard),
        })
    }

    /// Records a failed attempt under its lease epoch: requeued with backoff, or
    /// failed for good after the sweep's `max_attempts` reported failures (or at
    /// once when not retryable). `busy`: the attempt's busy seconds, for cost.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail(
        &self,
        shard: i64,
        epoch: i64,
        error: &str,
        retryable: bool,
        busy: f64,
        now_ms: i64,
        policy: &LeasePolicy,
    ) -> Result<ShardState> {
        self.end_leased(shard, epoch, Ended::Failed { retryable }, error, busy, now_ms, policy).await
    }

    /// Takes back a shard a stopping worker handed back under its lease epoch:
    /// queued again at once, counted as a lost lease (not a failure).
    pub async fn hand_back(&self, shard: i64, epoch: i64, busy: f64, now_ms: i64, policy: &LeasePolicy) -> Result<ShardState> {
        self.end_leased(shard, epoch, Ended::HandedBack, "", busy, now_ms, policy).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn end_leased(
        &self,
        shard: i64,
        epoch: i64,
        ended: Ended,
        error: &str,
        busy: f64,
        now_ms: i64,
        policy: &LeasePolicy,
    ) -> Result<ShardState> {
        let mut tx = self.pool.begin().await?;
        let mut row: PgLocked = sqlx::query_as(include_str!("../queries/shards/lock_leased.sql"))
            .bind(shard)
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::Stale(shard))?;
        row.busy_seconds = row.busy_seconds.max(busy);
        let state = Self::release(&mut tx, &row, ended, error, now_ms, policy).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Sends a locked leased shard where `policy` says after `ended`.
    async fn release(tx: &mut sqlx::PgConnection, l: &PgLocked, ended: Ended, error: &str, now_ms: i64, policy: &LeasePolicy) -> Result<ShardState> {
        let next = policy.after(&l.counters(), ended, l.max_attempts.max(0) as u32, error);
        let outcome = match ended {
            Ended::Failed { .. } => "failed",
            Ended::HandedBack => "handed_back",
            Ended::Expired { .. } => "abandoned",
        };
        let wall = l.leased_at.map(|t| ((now_ms - t.timestamp_millis()) as f64 / 1000.0).max(0.0)).unwrap_or(0.0);
        sqlx::query(include_str!("../queries/shards/attempt.sql"))
            .bind(l.id)
            .bind(l.lease_epoch)
            .bind(l.sweep_id)
            .bind(l.model_idx)
            .bind(l.worker_id)
            .bind(outcome)
            .bind(l.busy_seconds)
            .bind(wall)
            .bind(ts(now_ms))
            .execute(&mut *tx)
            .await?;
        sqlx::query(include_str!("../queries/shards/release.sql"))
            .bind(l.id)
            .bind(next.state.as_str())
            .bind(ts(now_ms + next.delay_ms))
            .bind(&next.error)
            .bind(ts(now_ms))
            .bind(next.counters.failures as i32)
            .bind(next.counters.lost as i32)
            .bind(&next.counters.lost_by)
            .execute(&mut *tx)
            .await?;
        if next.state == ShardState::Failed {
            Self::count_failed(tx, l.sweep_id, l.inferences, now_ms).await?;
        }
        Ok(next.state)
    }

    /// Requeues (with backoff) or fails shards whose lease expired before `now`;
    /// returns how many it released.
    pub async fn reap(&self, now_ms: i64, policy: &LeasePolicy, batch: i64) -> Result<usize> {
        self.reap_since(now_ms, None, policy, batch).await
    }

    /// [`Store::reap`] of the leases whose deadline lies from `since_ms` on
    /// (all, with `None`).
    pub async fn reap_since(&self, now_ms: i64, since_ms: Option<i64>, policy: &LeasePolicy, batch: i64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let locked: Vec<PgLocked> = sqlx::query_as(include_str!("../queries/shards/lock_expired.sql"))
            .bind(ts(now_ms))
            .bind(batch)
            .bind(ts(since_ms.unwrap_or(0)))
            .fetch_all(&mut *tx)
            .await?;
        for l in &locked {
            // A lease with no holder cannot be: count it against no worker.
            let ended = Ended::Expired { worker: l.worker_id.unwrap_or(0) };
            Self::release(&mut tx, l, ended, "", now_ms, policy).await?;
        }
        tx.commit().await?;
        Ok(locked.len())
    }
}

/// A sweep's shards and inferences of one model in one state.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ModelProgress {
    /// Model index.
    pub model_idx: i32,
    /// Shard state.
    pub state: String,
    /// Shards.
    pub shards: i64,
    /// Their planned inferences.
    pub inferences: i64,
}

impl Store {
    /// A sweep's shards and planned inferences by model and state.
    pub async fn model_progress(&self, sweep_id: i64) -> Result<Vec<ModelProgress>> {
        Ok(sqlx::query_as(include_str!("../queries/shards/model_progress.sql")).bind(sweep_id).fetch_all(&self.pool).await?)
    }
}
