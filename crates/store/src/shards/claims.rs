//! Claims: shards leased to workers in one statement (`FOR UPDATE SKIP
//! LOCKED` + `LIMIT`, then `UPDATE ... RETURNING`), concurrent claims of one
//! (sweep, model) through a handle sharing it, each from where the last ended.

use super::Claimed;
use crate::{ts, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use jagged_domain::lease::LeasePolicy;

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

impl Store {
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
            Some(m) => {
                sqlx::query_as(concat!(include_str!("../../queries/shards/claim_model.sql"), include_str!("../../queries/shards/claim_update.sql")))
                    .bind(ts(now_ms))
                    .bind(&workers)
                    .bind(total)
                    .bind(ts(policy.deadline(now_ms)))
                    .bind(sweep)
                    .bind(m)
                    .bind(if after.0 == m { after.1 } else { i64::MIN })
                    .bind(&counts)
            }
            None => {
                sqlx::query_as(concat!(include_str!("../../queries/shards/claim_from.sql"), include_str!("../../queries/shards/claim_update.sql")))
                    .bind(ts(now_ms))
                    .bind(&workers)
                    .bind(total)
                    .bind(ts(policy.deadline(now_ms)))
                    .bind(sweep)
                    .bind(after.0)
                    .bind(after.1)
                    .bind(&counts)
            }
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
}
