//! The only crate that speaks SQL. Each query lives in `queries/<table>/<verb>.sql`;
//! row structs stay private and convert into the public types here.
//!
//! The scheduling rules of the design brief live in these statements:
//! - [`Store::claim`]: one statement, `FOR UPDATE SKIP LOCKED` + `LIMIT` in a CTE,
//!   then `UPDATE ... RETURNING` that bumps attempt and lease epoch.
//! - [`Store::complete`]: fenced by the lease epoch; a stale holder gets
//!   [`StoreError::Stale`] and its output is never recorded.
//! - [`Store::fail`] and [`Store::reap`]: retry with backoff from
//!   [`LeasePolicy`], or fail the shard with its last error after its attempts.
//!
//! Every method takes `now` explicitly, so tests drive the clock.
#![deny(missing_docs)]

pub mod local;

use chrono::{DateTime, TimeZone, Utc};
use jagged_domain::lease::{LeasePolicy, ShardState};
use jagged_domain::plan::PlannedShard;
use jagged_domain::spec::ResolvedSweep;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lease epoch does not match the shard's current lease: the caller lost it.
    #[error("shard `{0}`: lease is stale (expired, reassigned or cancelled)")]
    Stale(i64),
    /// No such sweep.
    #[error("sweep `{0}` not found")]
    NoSweep(i64),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database failed for a group of calls; retrying may succeed.
    #[error("database: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("stored data: {0}")]
    Data(String),
    /// A commit names an object other than its shard attempt's own part.
    #[error("shard `{shard}`: object key `{key}` is not this attempt's part (`{expected}`)")]
    BadKey {
        /// The shard.
        shard: i64,
        /// The key given.
        key: String,
        /// The only key accepted.
        expected: String,
    },
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Db(_) | StoreError::Unavailable(_))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch as a database timestamp.
pub fn ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().expect("timestamp in range")
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

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
}

/// The committed output of a shard.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Object key of the result file.
    pub object_key: String,
    /// Rows in it.
    pub rows: i64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Epoch of the lease it was written under.
    pub lease_epoch: i64,
    /// Writer.
    pub worker_id: i64,
    /// Execution provider.
    pub provider: String,
    /// Wall seconds the shard took.
    pub seconds: f64,
    /// The model's object key (for throughput per model), when known.
    pub model_key: Option<String>,
}

/// One shard's commit, for [`Store::complete_many`].
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// The shard.
    pub shard: i64,
    /// The lease epoch it was written under.
    pub epoch: i64,
    /// The committing worker.
    pub worker: i64,
    /// The output.
    pub out: Output,
    /// Items that failed inside it.
    pub failed: Vec<FailedItem>,
}

/// An item that failed inside an otherwise completed shard.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedItem {
    /// Image index.
    pub image_idx: i32,
    /// Image name.
    pub image_name: String,
    /// Why it failed.
    pub reason: String,
}

/// A sweep's counters and state.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// running, done or cancelled.
    pub state: String,
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
    /// Inferences in done shards.
    pub inferences_done: i64,
    /// Failed items in done shards.
    pub failed_items: i64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// When it became done or cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A committed output with its shard's coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedOutput {
    /// Shard id.
    pub shard_id: i64,
    /// Object key of the result file.
    pub object_key: String,
    /// Rows.
    pub rows: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Model index.
    pub model_idx: i32,
    /// Family index.
    pub family_idx: i32,
}

/// A failed item with its shard's coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedFailure {
    /// Shard id.
    pub shard_id: i64,
    /// Model index.
    pub model_idx: i32,
    /// Family index.
    pub family_idx: i32,
    /// The item.
    pub item: FailedItem,
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

/// The migrations under `migrations/`, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

fn sweep_row(r: &sqlx::postgres::PgRow) -> SweepRow {
    SweepRow {
        id: r.get("id"),
        name: r.get("name"),
        state: r.get("state"),
        priority: r.get("priority"),
        total: r.get("total_shards"),
        done: r.get("shards_done"),
        failed: r.get("shards_failed"),
        cancelled: r.get("shards_cancelled"),
        inferences_total: r.get("inferences_total"),
        inferences_done: r.get("inferences_done"),
        failed_items: r.get("failed_items"),
        created_at: r.get("created_at"),
        finished_at: r.get("finished_at"),
    }
}

impl Store {
    /// Connects with a pool of up to `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let pool = PgPoolOptions::new().max_connections(max_connections).acquire_timeout(std::time::Duration::from_secs(10)).connect(url).await?;
        Ok(Store { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations (serialised by sqlx's advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreError::Data(format!("migration failed: {e}")))
    }

    /// Stores a sweep and its planned shards in one transaction; returns its id.
    pub async fn insert_sweep(&self, spec_toml: &str, sweep: &ResolvedSweep, shards: &[PlannedShard]) -> Result<i64> {
        Ok(self.insert_sweep_once(spec_toml, sweep, shards, None, false).await?.0)
    }

    /// Stores a sweep with its `content_hash`; with `dedupe`, unless one with the
    /// same hash (and not cancelled) exists, in which case that one's id is
    /// returned with `true`. Concurrent submits of the same content are
    /// serialised, so only one is stored.
    pub async fn insert_sweep_once(
        &self,
        spec_toml: &str,
        sweep: &ResolvedSweep,
        shards: &[PlannedShard],
        content_hash: Option<&str>,
        dedupe: bool,
    ) -> Result<(i64, bool)> {
        let points: Vec<i64> = sweep.spec.families.iter().map(|f| f.points().len() as i64).collect();
        let n: Vec<i64> = shards.iter().map(|s| (s.image_hi - s.image_lo) as i64 * points[s.family as usize]).collect();
        let resolved = serde_json::to_value(sweep).map_err(|e| StoreError::Data(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        if let (Some(h), true) = (content_hash, dedupe) {
            sqlx::query(include_str!("../queries/sweeps/lock_hash.sql")).bind(h).execute(&mut *tx).await?;
            let found: Option<i64> = sqlx::query_scalar(include_str!("../queries/sweeps/find_by_hash.sql")).bind(h).fetch_optional(&mut *tx).await?;
            if let Some(id) = found {
                return Ok((id, true));
            }
        }
        let id: i64 = sqlx::query_scalar(include_str!("../queries/sweeps/insert.sql"))
            .bind(&sweep.spec.name)
            .bind(spec_toml)
            .bind(resolved)
            .bind(sweep.spec.priority)
            .bind(shards.len() as i32)
            .bind(n.iter().sum::<i64>())
            .bind(content_hash)
            .fetch_one(&mut *tx)
            .await?;
        for chunk in shards.chunks(50_000).zip(n.chunks(50_000)) {
            let (sh, nn) = chunk;
            sqlx::query(include_str!("../queries/shards/insert.sql"))
                .bind(id)
                .bind(sh.iter().map(|s| s.model as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.family as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.image_lo as i32).collect::<Vec<_>>())
                .bind(sh.iter().map(|s| s.image_hi as i32).collect::<Vec<_>>())
                .bind(nn)
                .bind(sweep.spec.priority)
                .bind(sweep.spec.shard.max_attempts as i32)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((id, false))
    }

    /// The resolved sweep as submitted.
    pub async fn resolved(&self, sweep_id: i64) -> Result<ResolvedSweep> {
        let v: Option<serde_json::Value> =
            sqlx::query_scalar(include_str!("../queries/sweeps/resolved.sql")).bind(sweep_id).fetch_optional(&self.pool).await?;
        let v = v.ok_or(StoreError::NoSweep(sweep_id))?;
        serde_json::from_value(v).map_err(|e| StoreError::Data(format!("sweep `{sweep_id}`: {e}")))
    }

    /// One sweep's counters.
    pub async fn sweep(&self, sweep_id: i64) -> Result<SweepRow> {
        let r = sqlx::query(include_str!("../queries/sweeps/get.sql")).bind(sweep_id).fetch_optional(&self.pool).await?;
        r.map(|r| sweep_row(&r)).ok_or(StoreError::NoSweep(sweep_id))
    }

    /// All sweeps.
    pub async fn sweeps(&self) -> Result<Vec<SweepRow>> {
        let rows = sqlx::query(include_str!("../queries/sweeps/list.sql")).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(sweep_row).collect())
    }

    /// Shards of a sweep currently leased.
    pub async fn leased_count(&self, sweep_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("../queries/shards/count_leased.sql")).bind(sweep_id).fetch_one(&self.pool).await?)
    }

    /// Failed shards of a sweep with their last errors (at most `limit`).
    pub async fn shard_errors(&self, sweep_id: i64, limit: i64) -> Result<Vec<ShardFailure>> {
        let rows = sqlx::query(include_str!("../queries/shards/errors.sql")).bind(sweep_id).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| ShardFailure {
                shard_id: r.get("id"),
                model_idx: r.get("model_idx"),
                family_idx: r.get("family_idx"),
                image_lo: r.get("image_lo"),
                image_hi: r.get("image_hi"),
                error: r.get("last_error"),
            })
            .collect())
    }

    /// First lease start and last finish of a sweep's shards (ms), once any exist.
    pub async fn sweep_timing(&self, sweep_id: i64) -> Result<Option<(i64, i64)>> {
        let r = sqlx::query(include_str!("../queries/shards/timing.sql")).bind(sweep_id).fetch_one(&self.pool).await?;
        Ok(r.get::<Option<i64>, _>("first_start").zip(r.get::<Option<i64>, _>("last_finish")))
    }

    /// Registers a worker; returns its id.
    pub async fn register_worker(&self, name: &str, host: &str, device: &str, now_ms: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("../queries/workers/register.sql"))
            .bind(name)
            .bind(host)
            .bind(device)
            .bind(ts(now_ms))
            .fetch_one(&self.pool)
            .await?)
    }

    /// Workers seen since `since_ms`.
    pub async fn workers_alive(&self, since_ms: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("../queries/workers/count_alive.sql")).bind(ts(since_ms)).fetch_one(&self.pool).await?)
    }

    /// Claims up to `max` ready shards for `worker` from the running sweeps in
    /// priority order (highest first, then oldest). The coordinator uses
    /// [`Store::claim_from`] with its fair-share order instead.
    pub async fn claim(&self, worker: i64, max: i64, now_ms: i64, policy: &LeasePolicy) -> Result<Vec<Claimed>> {
        let mut running = self.running_sweeps().await?;
        running.sort_by_key(|&(id, priority)| (-(priority as i64), id));
        for (id, _) in running {
            let c = self.claim_from(worker, id, None, max, now_ms, policy).await?;
            if !c.is_empty() {
                return Ok(c);
            }
        }
        Ok(vec![])
    }

    /// Claims up to `max` ready shards of one sweep (of one model, if given) for
    /// `worker`: lowest model index, then lowest shard id, first.
    pub async fn claim_from(&self, worker: i64, sweep: i64, model: Option<i32>, max: i64, now_ms: i64, policy: &LeasePolicy) -> Result<Vec<Claimed>> {
        let rows = sqlx::query(include_str!("../queries/shards/claim_from.sql"))
            .bind(ts(now_ms))
            .bind(worker)
            .bind(max)
            .bind(ts(policy.deadline(now_ms)))
            .bind(sweep)
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<Claimed> = rows
            .iter()
            .map(|r| Claimed {
                id: r.get("id"),
                sweep_id: r.get("sweep_id"),
                model_idx: r.get("model_idx"),
                family_idx: r.get("family_idx"),
                image_lo: r.get("image_lo"),
                image_hi: r.get("image_hi"),
                attempt: r.get("attempt"),
                lease_epoch: r.get("lease_epoch"),
                deadline_ms: r.get::<DateTime<Utc>, _>("leased_until").timestamp_millis(),
                inferences: r.get("inferences"),
            })
            .collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Running sweeps with their priorities, by id.
    pub async fn running_sweeps(&self) -> Result<Vec<(i64, i32)>> {
        let rows = sqlx::query(include_str!("../queries/sweeps/running.sql")).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("priority"))).collect())
    }

    /// Measured inferences per second of a model (by object key) over its most
    /// recent `recent` committed shards, per execution provider: (provider,
    /// per second, shards).
    pub async fn throughput(&self, model_key: &str, recent: i64) -> Result<Vec<(String, f64, i64)>> {
        let rows = sqlx::query(include_str!("../queries/outputs/throughput.sql")).bind(model_key).bind(recent).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("provider"), r.get("per_sec"), r.get("shards"))).collect())
    }

    /// Renews the leases `worker` holds; returns the ids of held shards it lost.
    pub async fn heartbeat(&self, worker: i64, held: &[(i64, i64)], now_ms: i64, policy: &LeasePolicy) -> Result<Vec<i64>> {
        sqlx::query(include_str!("../queries/workers/touch.sql")).bind(worker).bind(ts(now_ms)).execute(&self.pool).await?;
        if held.is_empty() {
            return Ok(vec![]);
        }
        let kept: Vec<i64> = sqlx::query_scalar(include_str!("../queries/shards/heartbeat.sql"))
            .bind(worker)
            .bind(held.iter().map(|h| h.0).collect::<Vec<_>>())
            .bind(held.iter().map(|h| h.1).collect::<Vec<_>>())
            .bind(ts(policy.deadline(now_ms)))
            .fetch_all(&self.pool)
            .await?;
        Ok(held.iter().map(|h| h.0).filter(|id| !kept.contains(id)).collect())
    }

    /// Commits a shard's output under its lease epoch, with its failed items, and
    /// counts it into the sweep, atomically ([`Store::complete_many`] of one).
    pub async fn complete(&self, shard: i64, epoch: i64, worker: i64, out: &Output, failed: &[FailedItem], now_ms: i64) -> Result<()> {
        let commit = Commit { shard, epoch, worker, out: out.clone(), failed: failed.to_vec() };
        self.complete_many(std::slice::from_ref(&commit), now_ms).await?.remove(0)
    }

    /// Commits many shards in one statement (one round trip, one counter update
    /// per sweep), each fenced by its lease epoch and part key as
    /// [`Store::complete`]; per commit: done, [`StoreError::Stale`] or
    /// [`StoreError::BadKey`]. A database error fails them all (none is written).
    pub async fn complete_many(&self, commits: &[Commit], now_ms: i64) -> Result<Vec<Result<()>>> {
        let mut results: Vec<Option<Result<()>>> = commits.iter().map(|_| None).collect();
        let mut batch: Vec<(usize, i64, i32)> = Vec::new(); // (index, sweep, attempt)
        let mut later = Vec::new(); // the same shard twice: after this batch
        let mut seen = std::collections::HashSet::new();
        for (i, c) in commits.iter().enumerate() {
            let named = jagged_domain::keys::parse_part_key(&c.out.object_key).filter(|&(_, s, _, e)| s == c.shard && e == c.epoch);
            match named {
                Some(_) if !seen.insert(c.shard) => later.push(i),
                Some((sweep, _, attempt, _)) => batch.push((i, sweep, attempt)),
                None => {}
            }
        }
        if !batch.is_empty() {
            let col = |f: &dyn Fn(&Commit) -> i64| batch.iter().map(|&(i, ..)| f(&commits[i])).collect::<Vec<i64>>();
            let text = |f: &dyn Fn(&Commit) -> &str| batch.iter().map(|&(i, ..)| f(&commits[i]).to_string()).collect::<Vec<String>>();
            let failed: Vec<(i64, &FailedItem)> =
                batch.iter().flat_map(|&(i, ..)| commits[i].failed.iter().map(move |f| (commits[i].shard, f))).collect();
            let done: Vec<i64> = sqlx::query_scalar(include_str!("../queries/shards/complete.sql"))
                .bind(col(&|c| c.shard))
                .bind(col(&|c| c.epoch))
                .bind(batch.iter().map(|b| b.1).collect::<Vec<i64>>())
                .bind(batch.iter().map(|b| b.2).collect::<Vec<i32>>())
                .bind(text(&|c| &c.out.object_key))
                .bind(col(&|c| c.out.rows))
                .bind(text(&|c| &c.out.sha256))
                .bind(col(&|c| c.worker))
                .bind(text(&|c| &c.out.provider))
                .bind(batch.iter().map(|&(i, ..)| commits[i].out.seconds).collect::<Vec<f64>>())
                .bind(batch.iter().map(|&(i, ..)| commits[i].out.model_key.clone()).collect::<Vec<Option<String>>>())
                .bind(col(&|c| c.failed.len() as i64))
                .bind(ts(now_ms))
                .bind(failed.iter().map(|f| f.0).collect::<Vec<i64>>())
                .bind(failed.iter().map(|f| f.1.image_idx).collect::<Vec<i32>>())
                .bind(failed.iter().map(|f| f.1.image_name.clone()).collect::<Vec<String>>())
                .bind(failed.iter().map(|f| f.1.reason.clone()).collect::<Vec<String>>())
                .fetch_all(&self.pool)
                .await?;
            for &(i, ..) in &batch {
                if done.contains(&commits[i].shard) {
                    results[i] = Some(Ok(()));
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

    async fn refusal(&self, c: &Commit) -> Result<StoreError> {
        let row = sqlx::query(include_str!("../queries/shards/lease_of.sql")).bind(c.shard).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) if r.get::<String, _>("state") == "leased" && r.get::<i64, _>("lease_epoch") == c.epoch => {
                let expected = jagged_domain::keys::part_key(r.get("sweep_id"), c.shard, r.get("attempt"), c.epoch);
                if c.out.object_key != expected {
                    StoreError::BadKey { shard: c.shard, key: c.out.object_key.clone(), expected }
                } else {
                    StoreError::Stale(c.shard)
                }
            }
            _ => StoreError::Stale(c.shard),
        })
    }

    async fn count_shard(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        sweep_id: i64,
        done: i32,
        failed: i32,
        inferences: i64,
        failed_items: i64,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(include_str!("../queries/sweeps/count_shard.sql"))
            .bind(sweep_id)
            .bind(done)
            .bind(failed)
            .bind(inferences)
            .bind(failed_items)
            .bind(ts(now_ms))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Records a failed attempt under its lease epoch: requeued with backoff, or
    /// failed for good after its last attempt (or at once when not retryable).
    pub async fn fail(&self, shard: i64, epoch: i64, error: &str, retryable: bool, now_ms: i64, policy: &LeasePolicy) -> Result<ShardState> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(include_str!("../queries/shards/lock_leased.sql"))
            .bind(shard)
            .bind(epoch)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::Stale(shard))?;
        let locked = vec![(shard, row.get::<i64, _>("sweep_id"), row.get::<i32, _>("attempt"), row.get::<i32, _>("max_attempts"))];
        let states = Self::release(&mut tx, &locked, error, retryable, now_ms, policy).await?;
        tx.commit().await?;
        Ok(states[0])
    }

    async fn release(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        locked: &[(i64, i64, i32, i32)],
        error: &str,
        retryable: bool,
        now_ms: i64,
        policy: &LeasePolicy,
    ) -> Result<Vec<ShardState>> {
        let states: Vec<ShardState> = locked
            .iter()
            .map(|&(_, _, attempt, max)| if retryable { policy.after_failure(attempt as u32, max as u32) } else { ShardState::Failed })
            .collect();
        let run_after: Vec<DateTime<Utc>> = locked.iter().map(|&(_, _, attempt, _)| ts(now_ms + policy.backoff_ms(attempt as u32))).collect();
        sqlx::query(include_str!("../queries/shards/release.sql"))
            .bind(locked.iter().map(|l| l.0).collect::<Vec<_>>())
            .bind(states.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>())
            .bind(run_after)
            .bind(vec![error.to_string(); locked.len()])
            .bind(ts(now_ms))
            .execute(&mut **tx)
            .await?;
        for (l, s) in locked.iter().zip(&states) {
            if *s == ShardState::Failed {
                Self::count_shard(tx, l.1, 0, 1, 0, 0, now_ms).await?;
            }
        }
        Ok(states)
    }

    /// Requeues (with backoff) or fails shards whose lease expired before `now`;
    /// returns how many it released.
    pub async fn reap(&self, now_ms: i64, policy: &LeasePolicy, batch: i64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(include_str!("../queries/shards/lock_expired.sql")).bind(ts(now_ms)).bind(batch).fetch_all(&mut *tx).await?;
        let locked: Vec<(i64, i64, i32, i32)> =
            rows.iter().map(|r| (r.get("id"), r.get("sweep_id"), r.get("attempt"), r.get("max_attempts"))).collect();
        if !locked.is_empty() {
            Self::release(&mut tx, &locked, "lease expired (worker lost or too slow)", true, now_ms, policy).await?;
        }
        tx.commit().await?;
        Ok(locked.len())
    }

    /// Cancels a sweep: queued and leased shards become cancelled.
    pub async fn cancel(&self, sweep_id: i64, now_ms: i64) -> Result<SweepRow> {
        self.sweep(sweep_id).await?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(include_str!("../queries/shards/cancel.sql")).bind(sweep_id).bind(ts(now_ms)).execute(&mut *tx).await?.rows_affected();
        sqlx::query(include_str!("../queries/sweeps/cancel.sql")).bind(sweep_id).bind(n as i32).bind(ts(now_ms)).execute(&mut *tx).await?;
        tx.commit().await?;
        self.sweep(sweep_id).await
    }

    /// Committed outputs of a sweep, in shard order.
    pub async fn outputs(&self, sweep_id: i64) -> Result<Vec<CommittedOutput>> {
        let rows = sqlx::query(include_str!("../queries/outputs/list.sql")).bind(sweep_id).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| CommittedOutput {
                shard_id: r.get("shard_id"),
                object_key: r.get("object_key"),
                rows: r.get("rows"),
                sha256: r.get("sha256"),
                model_idx: r.get("model_idx"),
                family_idx: r.get("family_idx"),
            })
            .collect())
    }

    /// Failed items of a sweep's committed shards.
    pub async fn failed_items(&self, sweep_id: i64) -> Result<Vec<CommittedFailure>> {
        let rows = sqlx::query(include_str!("../queries/outputs/failed_items.sql")).bind(sweep_id).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| CommittedFailure {
                shard_id: r.get("shard_id"),
                model_idx: r.get("model_idx"),
                family_idx: r.get("family_idx"),
                item: FailedItem { image_idx: r.get("image_idx"), image_name: r.get("image_name"), reason: r.get("reason") },
            })
            .collect())
    }
}
