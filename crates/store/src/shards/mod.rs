//! The `shards` table: planned work, claims, leases, fenced commits, failures
//! and the reaper (`queries/shards/`): what a shard is and the reads of a
//! sweep's shards here, claims in `claims.rs`, and how a lease ends
//! (renewed, committed, failed, handed back, expired) in `ends.rs`, with the
//! evidence weighed before a shard fails as one that kills its workers in
//! `evidence.rs`.

mod claims;
mod ends;
mod evidence;

pub(crate) use claims::{ClaimGroups, Cursors};
pub use claims::{Cursor, RESCAN_MS};

use crate::{Result, Store};
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
            sqlx::query(include_str!("../../queries/shards/insert.sql"))
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
        Ok(sqlx::query_scalar(include_str!("../../queries/shards/count_leased.sql")).bind(sweep_id).fetch_one(&self.pool).await?)
    }

    /// Failed shards of a sweep with their last errors (at most `limit`).
    pub async fn shard_errors(&self, sweep_id: i64, limit: i64) -> Result<Vec<ShardFailure>> {
        let rows: Vec<PgFailure> =
            sqlx::query_as(include_str!("../../queries/shards/errors.sql")).bind(sweep_id).bind(limit).fetch_all(&self.pool).await?;
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
        let r: PgTiming = sqlx::query_as(include_str!("../../queries/shards/timing.sql")).bind(sweep_id).fetch_one(&self.pool).await?;
        Ok(r.first_start.zip(r.last_finish).map(|(first_start_ms, last_finish_ms)| SweepTiming { first_start_ms, last_finish_ms }))
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
        Ok(sqlx::query_as(include_str!("../../queries/shards/model_progress.sql")).bind(sweep_id).fetch_all(&self.pool).await?)
    }
}
