//! The `sweeps` table: a sweep's resolved form (versioned JSON) and state; and
//! `sweep_tallies`: its counters, one row per change, the latest counting
//! (`queries/sweeps/`, migration 011).

use crate::{ts, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use jagged_domain::plan::PlannedShard;
pub use jagged_domain::share::RunningSweep;
use jagged_domain::spec::{ResolvedSweep, RESOLVED_FORMAT};
use jagged_domain::status::SweepState;
use jagged_domain::transform::Family;

/// A sweep's counters and state.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// State.
    pub state: SweepState,
    /// Priority.
    pub priority: i32,
    /// Shards planned.
    pub total: i32,
    /// Shards done.
    pub done: i32,
    /// Shards failed.
    pub failed: i32,
    /// Shards cancelled.
    pub cancelled: i32,
    /// Inferences planned.
    pub inferences_total: i64,
    /// Inferences run (rows written) in done shards.
    pub inferences_done: i64,
    /// Planned inferences that could not run: those of failed items and of
    /// failed shards.
    pub inferences_failed: i64,
    /// Failed items in done shards.
    pub failed_items: i64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// When it stopped running (done, failed or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
}

/// A change to one sweep's counters ([`Store::tally`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Tally {
    pub sweep: i64,
    pub total_shards: i32,
    pub inferences_total: i64,
    pub shards_done: i32,
    pub shards_failed: i32,
    pub shards_cancelled: i32,
    pub inferences_done: i64,
    pub inferences_failed: i64,
    pub failed_items: i64,
}

#[derive(sqlx::FromRow)]
struct PgSweep {
    id: i64,
    name: String,
    state: String,
    priority: i32,
    total_shards: i32,
    shards_done: i32,
    shards_failed: i32,
    shards_cancelled: i32,
    inferences_total: i64,
    inferences_done: i64,
    inferences_failed: i64,
    failed_items: i64,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<PgSweep> for SweepRow {
    type Error = StoreError;
    fn try_from(r: PgSweep) -> Result<SweepRow> {
        let state = SweepState::parse(&r.state).ok_or_else(|| StoreError::Data(format!("sweep `{}`: unknown state `{}`", r.id, r.state)))?;
        Ok(SweepRow {
            id: r.id,
            name: r.name,
            state,
            priority: r.priority,
            total: r.total_shards,
            done: r.shards_done,
            failed: r.shards_failed,
            cancelled: r.shards_cancelled,
            inferences_total: r.inferences_total,
            inferences_done: r.inferences_done,
            inferences_failed: r.inferences_failed,
            failed_items: r.failed_items,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PgResolved {
    resolved: serde_json::Value,
    resolved_format: i32,
}

#[derive(sqlx::FromRow)]
struct PgRunning {
    id: i64,
    priority: i32,
}

/// Decodes a stored resolved form of any known format. Format 1 differs from 2
/// only by lacking model structures, which read as unknown.
fn decode_resolved(sweep: i64, r: PgResolved) -> Result<ResolvedSweep> {
    if r.resolved_format < 1 || r.resolved_format as u32 > RESOLVED_FORMAT {
        return Err(StoreError::Format { sweep, format: r.resolved_format, known: RESOLVED_FORMAT });
    }
    serde_json::from_value(r.resolved).map_err(|e| StoreError::Data(format!("sweep `{sweep}` (format {}): {e}", r.resolved_format)))
}

/// A submitted sweep as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Inserted {
    /// The sweep's id.
    pub id: i64,
    /// The same sweep existed (same content hash); nothing was added.
    pub existing: bool,
    /// Pairs whose results another sweep held, adopted instead of planned.
    pub adopted: Vec<Adopted>,
    /// Pairs planned to take most rows from an earlier grid of their family.
    pub widened: Vec<Widened>,
}

/// The content keys of a sweep's (model, family) pairs, `[model][family]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairKeys {
    /// What shapes a pair's rows: two pairs with the same key have the same rows.
    pub exact: Vec<Vec<String>>,
    /// The same without the grid's extent (`None` for families whose rows depend
    /// on more than their point): pairs with the same such key differ at most in
    /// their grids' extents, and one may take rows from the other.
    pub wide: Vec<Vec<Option<String>>>,
}

/// One (model, family) pair planned to take the rows an earlier grid of the
/// same family computed, inferring only the points it needs to write the rest
/// ([`Family::widening_of`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Widened {
    /// Model index in the new sweep.
    pub model_idx: u32,
    /// Family index in the new sweep.
    pub family_idx: u32,
    /// The sweep that computed the earlier grid.
    pub from_sweep: i64,
    /// The earlier pair's content key (its committed parts).
    pub from_key: String,
    /// The earlier grid's family.
    pub from_family: Family,
    /// Inferences planned for the pair.
    pub inferences: i64,
    /// Inferences a full run of the pair would make (its rows, which the
    /// sweep's counters count, as they count adopted pairs' rows).
    pub full: i64,
}

/// One (model, family) pair whose committed parts a new sweep adopted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    /// Model index in the new sweep.
    pub model_idx: u32,
    /// Family index in the new sweep.
    pub family_idx: u32,
    /// The sweep that computed (or itself adopted) them.
    pub from_sweep: i64,
    /// Shards adopted.
    pub shards: u32,
    /// Their inferences.
    pub inferences: i64,
}

/// The earlier pair a widened one takes rows from.
struct WidenSource {
    sweep: i64,
    key: String,
    family: Family,
}

#[derive(sqlx::FromRow)]
struct PgAdopted {
    shards: i32,
    inferences: i64,
    done: i64,
    skipped: i64,
    failed: i64,
}

impl Store {
    /// Stores a sweep and its planned shards in one transaction; returns its id.
    pub async fn insert_sweep(&self, spec_toml: &str, sweep: &ResolvedSweep, shards: &[PlannedShard]) -> Result<i64> {
        Ok(self.insert_sweep_once(spec_toml, sweep, shards, None, &PairKeys::default(), false).await?.id)
    }

    /// Stores a sweep with its `content_hash` and its pairs' content keys
    /// (recorded on their shards; empty: none). With `reuse`: if a sweep with
    /// the same hash (and not cancelled) exists, that one's id is returned as
    /// `existing`; otherwise every pair whose key a pair of another sweep holds
    /// with all its shards done adopts those shards' parts instead of its
    /// planned shards (a sweep adopting all of them is done at once), and every
    /// other pair whose key without the extent such a pair holds, with a grid
    /// it can take rows from, is planned to infer only the points it needs
    /// (the fewest of the candidates). Concurrent submits of the same content
    /// are serialised, so only one is stored.
    pub async fn insert_sweep_once(
        &self,
        spec_toml: &str,
        sweep: &ResolvedSweep,
        shards: &[PlannedShard],
        content_hash: Option<&str>,
        keys: &PairKeys,
        reuse: bool,
    ) -> Result<Inserted> {
        let key_of = |m: u32, f: u32| keys.exact.get(m as usize).and_then(|k| k.get(f as usize)).cloned();
        let wide_of = |m: u32, f: u32| keys.wide.get(m as usize).and_then(|k| k.get(f as usize)).cloned().flatten();
        let resolved = serde_json::to_value(sweep).map_err(|e| StoreError::Data(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        if let (Some(h), true) = (content_hash, reuse) {
            sqlx::query(include_str!("../queries/sweeps/lock_hash.sql")).bind(h).execute(&mut *tx).await?;
            let found: Option<i64> = sqlx::query_scalar(include_str!("../queries/sweeps/find_by_hash.sql")).bind(h).fetch_optional(&mut *tx).await?;
            if let Some(id) = found {
                return Ok(Inserted { id, existing: true, adopted: Vec::new(), widened: Vec::new() });
            }
        }
        let (sources, widening) = if reuse { Self::reuse_sources(&mut tx, sweep, keys).await? } else { Default::default() };
        let adopting = |s: &PlannedShard| sources.iter().any(|(m, f, _, _)| (*m, *f) == (s.model, s.family));
        let planned: Vec<PlannedShard> = shards.iter().filter(|s| !adopting(s)).copied().collect();
        // A widened pair's shards count their rows too, as adopted ones do: a
        // sweep's inferences are the results it holds, wherever they were run.
        let n: Vec<i64> = planned
            .iter()
            .map(|s| (s.image_hi - s.image_lo) as i64 * sweep.spec.families.get(s.family as usize).map_or(0, |f| f.points_per_image(s.ring)) as i64)
            .collect();
        let id: i64 = sqlx::query_scalar(include_str!("../queries/sweeps/insert.sql"))
            .bind(&sweep.spec.name)
            .bind(spec_toml)
            .bind(resolved)
            .bind(sweep.spec.priority)
            .bind(content_hash)
            .bind(RESOLVED_FORMAT as i32)
            .bind(planned.len() as i32)
            .bind(n.iter().sum::<i64>())
            .fetch_one(&mut *tx)
            .await?;
        let planned_keys: Vec<Option<String>> = planned.iter().map(|s| key_of(s.model, s.family)).collect();
        let planned_wide: Vec<Option<String>> = planned.iter().map(|s| wide_of(s.model, s.family)).collect();
        Self::insert_shards(&mut tx, id, sweep, &planned, &n, &planned_keys, &planned_wide).await?;
        let widened = Self::record_widenings(&mut tx, id, widening, &planned, &n).await?;
        let adopted = Self::adopt(&mut tx, id, sources, sweep.spec.priority).await?;
        tx.commit().await?;
        Ok(Inserted { id, existing: false, adopted, widened })
    }

    /// The pairs of `sweep` whose rows another sweep holds: computed in full
    /// there (model, family, key, that sweep), or with a grid this one can take
    /// rows from (model, family, that pair, points to infer per image).
    #[allow(clippy::type_complexity)]
    async fn reuse_sources(
        tx: &mut sqlx::PgConnection,
        sweep: &ResolvedSweep,
        keys: &PairKeys,
    ) -> Result<(Vec<(u32, u32, String, i64)>, Vec<(u32, u32, WidenSource, usize)>)> {
        let wide_of = |m: usize, f: usize| keys.wide.get(m).and_then(|k| k.get(f)).cloned().flatten();
        let (mut sources, mut widening) = (Vec::new(), Vec::new());
        for (m, per_family) in keys.exact.iter().enumerate() {
            for (f, key) in per_family.iter().enumerate() {
                let from: Option<i64> =
                    sqlx::query_scalar(include_str!("../queries/shards/reuse_source.sql")).bind(key).fetch_optional(&mut *tx).await?;
                if let Some(from) = from {
                    sources.push((m as u32, f as u32, key.clone(), from));
                } else if let (Some(wide), Some(family)) = (wide_of(m, f), sweep.spec.families.get(f)) {
                    if let Some((source, infer)) = Self::widen_source(&mut *tx, &wide, key, family).await? {
                        widening.push((m as u32, f as u32, source, infer));
                    }
                }
            }
        }
        Ok((sources, widening))
    }

    /// Records each widened pair of sweep `id` with its source, and what it
    /// plans: the inferences its shards make, and those they would in full.
    async fn record_widenings(
        tx: &mut sqlx::PgConnection,
        id: i64,
        widening: Vec<(u32, u32, WidenSource, usize)>,
        planned: &[PlannedShard],
        n: &[i64],
    ) -> Result<Vec<Widened>> {
        let mut widened = Vec::new();
        for (m, f, source, per_image) in widening {
            let family = serde_json::to_value(&source.family).map_err(|e| StoreError::Data(e.to_string()))?;
            sqlx::query(include_str!("../queries/shards/widen_insert.sql"))
                .bind(id)
                .bind(m as i32)
                .bind(f as i32)
                .bind(source.sweep)
                .bind(&source.key)
                .bind(family)
                .execute(&mut *tx)
                .await?;
            let (mut inferences, mut full) = (0, 0);
            for (s, k) in planned.iter().zip(n) {
                if (s.model, s.family) == (m, f) {
                    inferences += (s.image_hi - s.image_lo) as i64 * per_image as i64;
                    full += k;
                }
            }
            widened.push(Widened {
                model_idx: m,
                family_idx: f,
                from_sweep: source.sweep,
                from_key: source.key,
                from_family: source.family,
                inferences,
                full,
            });
        }
        Ok(widened)
    }

    /// Adopts into sweep `id` the shards of each pair computed in full
    /// elsewhere, counting them into its tally at once.
    async fn adopt(tx: &mut sqlx::PgConnection, id: i64, sources: Vec<(u32, u32, String, i64)>, priority: i32) -> Result<Vec<Adopted>> {
        let now_ms = crate::now_ms();
        let now = ts(now_ms);
        let mut adopted = Vec::new();
        // What the adopted pairs add to the sweep's counters, as one tally.
        let mut change = Tally { sweep: id, ..Default::default() };
        for (m, f, key, from) in sources {
            let a: PgAdopted = sqlx::query_as(include_str!("../queries/shards/adopt.sql"))
                .bind(id)
                .bind(from)
                .bind(&key)
                .bind(m as i32)
                .bind(f as i32)
                .bind(now)
                .bind(priority)
                .fetch_one(&mut *tx)
                .await?;
            change.total_shards += a.shards;
            change.inferences_total += a.inferences;
            change.shards_done += a.shards;
            change.inferences_done += a.done;
            change.inferences_failed += a.skipped;
            change.failed_items += a.failed;
            adopted.push(Adopted { model_idx: m, family_idx: f, from_sweep: from, shards: a.shards as u32, inferences: a.inferences });
        }
        if !adopted.is_empty() {
            Self::tally(tx, &[change], now_ms).await?;
        }
        Ok(adopted)
    }

    /// Of the pairs of key-without-extent `wide` computed in full elsewhere
    /// (other than the exact pair `key`), the one whose grid `family` takes
    /// rows from with the fewest points to infer (the newest of equals), with
    /// that number per image.
    async fn widen_source(tx: &mut sqlx::PgConnection, wide: &str, key: &str, family: &Family) -> Result<Option<(WidenSource, usize)>> {
        let candidates: Vec<(i64, i32, String)> =
            sqlx::query_as(include_str!("../queries/shards/widen_sources.sql")).bind(wide).bind(key).fetch_all(&mut *tx).await?;
        let mut best: Option<(WidenSource, usize)> = None;
        for (sweep, family_idx, from_key) in candidates {
            let json: Option<serde_json::Value> = sqlx::query_scalar(include_str!("../queries/sweeps/family.sql"))
                .bind(sweep)
                .bind(family_idx)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
            let Some(old_family) = json.and_then(|j| serde_json::from_value::<Family>(j).ok()) else { continue };
            let Some(w) = family.widening_of(&old_family) else { continue };
            if best.as_ref().is_none_or(|b| w.infer.len() < b.1) {
                best = Some((WidenSource { sweep, key: from_key, family: old_family }, w.infer.len()));
            }
        }
        Ok(best)
    }

    /// A sweep's widened pairs, as recorded at submit (their inference counts
    /// are not kept: zero).
    pub async fn widenings(&self, sweep_id: i64) -> Result<Vec<Widened>> {
        let rows: Vec<(i32, i32, i64, String, serde_json::Value)> =
            sqlx::query_as(include_str!("../queries/shards/widenings.sql")).bind(sweep_id).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(m, f, from_sweep, from_key, family)| {
                let from_family = serde_json::from_value(family).map_err(|e| StoreError::Data(format!("sweep `{sweep_id}`: widened family: {e}")))?;
                Ok(Widened { model_idx: m as u32, family_idx: f as u32, from_sweep, from_key, from_family, inferences: 0, full: 0 })
            })
            .collect()
    }

    /// The committed parts (object key, SHA-256) of the pair of content key
    /// `key` in sweep `sweep_id` that hold any of images `lo..hi`, in image order.
    pub async fn widen_parts(&self, sweep_id: i64, key: &str, lo: i32, hi: i32) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(include_str!("../queries/shards/widen_parts.sql")).bind(sweep_id).bind(key).bind(lo).bind(hi).fetch_all(&self.pool).await?)
    }

    /// The resolved sweep as submitted, in any format this build reads.
    pub async fn resolved(&self, sweep_id: i64) -> Result<ResolvedSweep> {
        let r: Option<PgResolved> = sqlx::query_as(include_str!("../queries/sweeps/resolved.sql")).bind(sweep_id).fetch_optional(&self.pool).await?;
        decode_resolved(sweep_id, r.ok_or(StoreError::NoSweep(sweep_id))?)
    }

    /// One sweep's counters.
    pub async fn sweep(&self, sweep_id: i64) -> Result<SweepRow> {
        let r: Option<PgSweep> = sqlx::query_as(include_str!("../queries/sweeps/get.sql")).bind(sweep_id).fetch_optional(&self.pool).await?;
        r.ok_or(StoreError::NoSweep(sweep_id))?.try_into()
    }

    /// All sweeps.
    pub async fn sweeps(&self) -> Result<Vec<SweepRow>> {
        let rows: Vec<PgSweep> = sqlx::query_as(include_str!("../queries/sweeps/list.sql")).fetch_all(&self.pool).await?;
        rows.into_iter().map(SweepRow::try_from).collect()
    }

    /// Running sweeps with their priorities, by id.
    pub async fn running_sweeps(&self) -> Result<Vec<RunningSweep>> {
        let rows: Vec<PgRunning> = sqlx::query_as(include_str!("../queries/sweeps/running.sql")).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| RunningSweep { id: r.id, priority: r.priority }).collect())
    }

    /// Cancels a sweep: queued and leased shards become cancelled.
    pub async fn cancel(&self, sweep_id: i64, now_ms: i64) -> Result<SweepRow> {
        self.sweep(sweep_id).await?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(include_str!("../queries/shards/cancel.sql")).bind(sweep_id).bind(ts(now_ms)).execute(&mut *tx).await?.rows_affected();
        sqlx::query(include_str!("../queries/sweeps/cancel.sql")).bind(sweep_id).bind(ts(now_ms)).execute(&mut *tx).await?;
        Self::tally(&mut tx, &[Tally { sweep: sweep_id, shards_cancelled: n as i32, ..Default::default() }], now_ms).await?;
        tx.commit().await?;
        self.sweep(sweep_id).await
    }

    /// Counts a shard failed for good (with its planned inferences) into its
    /// sweep, ending the sweep `failed` when it was the last one out, inside the
    /// caller's transaction.
    pub(crate) async fn count_failed(tx: &mut sqlx::PgConnection, sweep_id: i64, inferences: i64, now_ms: i64) -> Result<()> {
        Self::tally(tx, &[Tally { sweep: sweep_id, shards_failed: 1, inferences_failed: inferences, ..Default::default() }], now_ms).await?;
        Ok(())
    }

    /// Adds `changes` (at most one per sweep) to their sweeps' counters inside
    /// the caller's transaction, after any shard row locks it takes: each
    /// sweep's tally lock, in sweep order, then the next tallies in one
    /// statement. A running sweep with no shard left to run ends `done` (or
    /// `failed`) at `now_ms`; returns the sweeps that ended.
    pub(crate) async fn tally(tx: &mut sqlx::PgConnection, changes: &[Tally], now_ms: i64) -> Result<Vec<i64>> {
        let mut changes = changes.to_vec();
        changes.sort_by_key(|c| c.sweep);
        for c in &changes {
            sqlx::query(include_str!("../queries/sweeps/tally_lock.sql")).bind(c.sweep).execute(&mut *tx).await?;
        }
        let col = |f: fn(&Tally) -> i64| changes.iter().map(f).collect::<Vec<i64>>();
        let col32 = |f: fn(&Tally) -> i32| changes.iter().map(f).collect::<Vec<i32>>();
        Ok(sqlx::query_scalar(include_str!("../queries/sweeps/tally.sql"))
            .bind(col(|c| c.sweep))
            .bind(col32(|c| c.total_shards))
            .bind(col(|c| c.inferences_total))
            .bind(col32(|c| c.shards_done))
            .bind(col32(|c| c.shards_failed))
            .bind(col32(|c| c.shards_cancelled))
            .bind(col(|c| c.inferences_done))
            .bind(col(|c| c.inferences_failed))
            .bind(col(|c| c.failed_items))
            .bind(ts(now_ms))
            .fetch_all(&mut *tx)
            .await?)
    }

    /// Requeues a sweep's failed shards (all, or only `shard`) with fresh
    /// attempts and reopens the sweep; committed results stay. Returns the
    /// requeued shards' ids.
    pub async fn retry_failed(&self, sweep_id: i64, shard: Option<i64>, now_ms: i64) -> Result<Vec<i64>> {
        let sweep = self.sweep(sweep_id).await?;
        if sweep.state == SweepState::Cancelled {
            return Err(StoreError::Refused(format!("sweep `{sweep_id}` was cancelled; submit its spec again to run what is left")));
        }
        let mut tx = self.pool.begin().await?;
        let requeued: Vec<(i64, i64)> =
            sqlx::query_as(include_str!("../queries/shards/retry.sql")).bind(sweep_id).bind(shard).bind(ts(now_ms)).fetch_all(&mut *tx).await?;
        if requeued.is_empty() {
            return Err(StoreError::Refused(match shard {
                Some(id) => format!("shard `{id}` of sweep `{sweep_id}` has not failed: only failed shards are retried"),
                None => format!("sweep `{sweep_id}` has no failed shards"),
            }));
        }
        let inferences: i64 = requeued.iter().map(|r| r.1).sum();
        sqlx::query(include_str!("../queries/sweeps/reopen.sql")).bind(sweep_id).execute(&mut *tx).await?;
        let change = Tally { sweep: sweep_id, shards_failed: -(requeued.len() as i32), inferences_failed: -inferences, ..Default::default() };
        Self::tally(&mut tx, &[change], now_ms).await?;
        tx.commit().await?;
        Ok(requeued.into_iter().map(|r| r.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_formats_are_read_up_to_the_current_and_newer_ones_refused() {
        // A format 1 row: no model structure.
        let v1 = serde_json::json!({
            "spec": {"name": "s", "dataset": {"path": "d"}, "models": [{"path": "m.onnx"}], "families": [{"kind": "diagonal"}]},
            "models": [{"name": "m", "key": "k", "card": {"name": "m", "input_name": "x", "output_name": "y", "input_size": 32,
                "normalize": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}, "num_classes": 10}}],
            "images": [{"name": "a.png", "key": "k", "label": 1}]
        });
        let old = decode_resolved(3, PgResolved { resolved: v1.clone(), resolved_format: 1 }).unwrap();
        assert_eq!(old.models[0].structure, None);
        assert_eq!(old.images.len(), 1);
        let current =
            decode_resolved(3, PgResolved { resolved: serde_json::to_value(&old).unwrap(), resolved_format: RESOLVED_FORMAT as i32 }).unwrap();
        assert_eq!(current, old);
        let e = decode_resolved(3, PgResolved { resolved: v1, resolved_format: RESOLVED_FORMAT as i32 + 1 }).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sweep `3`") && msg.contains(&format!("format {}", RESOLVED_FORMAT + 1)) && msg.contains("upgrade"), "{msg}");
        let garbage = decode_resolved(4, PgResolved { resolved: serde_json::json!({"spec": 1}), resolved_format: 1 }).unwrap_err();
        assert!(garbage.to_string().contains("sweep `4` (format 1)"), "{garbage}");
    }
}
