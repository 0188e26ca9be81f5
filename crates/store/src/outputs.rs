//! The `outputs` and `failed_items` tables: the one committed part of each done
//! shard, and the items that failed inside it (`queries/outputs/`).

use crate::{Result, Store};
use jagged_domain::task::FailedItem;

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
    /// Seconds the execution provider was busy on it (cost accounting).
    pub busy_seconds: f64,
    /// Numeric precision of its rows (`fp32`, `tf32`), when known.
    pub precision: Option<String>,
    /// The ONNX Runtime version that computed it, when known.
    pub runtime: Option<String>,
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
    /// An adaptive shard's images that go on to the next ring (their top-1 has
    /// not changed), each with its top-1 class at the reference point; a shard
    /// of the next ring is inserted with them, in the same statement as the
    /// commit. Empty: no follow-up.
    pub next_ring: Vec<(u32, u32)>,
}

/// A committed output with its shard's coordinates.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
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

/// A model's measured speed on one execution provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// Execution provider.
    pub provider: String,
    /// Inferences per second over the shards measured.
    pub per_sec: f64,
    /// Shards measured.
    pub shards: i64,
}

#[derive(sqlx::FromRow)]
struct PgFailedItem {
    shard_id: i64,
    image_idx: i32,
    image_name: String,
    reason: String,
    model_idx: i32,
    family_idx: i32,
}

#[derive(sqlx::FromRow)]
struct PgThroughput {
    provider: String,
    per_sec: f64,
    shards: i64,
}

impl Store {
    /// Committed outputs of a sweep, in shard order.
    pub async fn outputs(&self, sweep_id: i64) -> Result<Vec<CommittedOutput>> {
        Ok(sqlx::query_as(include_str!("../queries/outputs/list.sql")).bind(sweep_id).fetch_all(&self.pool).await?)
    }

    /// Failed items of a sweep's committed shards.
    pub async fn failed_items(&self, sweep_id: i64) -> Result<Vec<CommittedFailure>> {
        let rows: Vec<PgFailedItem> =
            sqlx::query_as(include_str!("../queries/outputs/failed_items.sql")).bind(sweep_id).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| CommittedFailure {
                shard_id: r.shard_id,
                model_idx: r.model_idx,
                family_idx: r.family_idx,
                item: FailedItem { index: r.image_idx as u32, name: r.image_name, reason: r.reason },
            })
            .collect())
    }

    /// A sweep's failed items grouped by reason, most first (at most `limit` reasons).
    pub async fn failure_reasons(&self, sweep_id: i64, limit: i64) -> Result<Vec<jagged_domain::status::ItemFailures>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as(include_str!("../queries/outputs/failure_reasons.sql")).bind(sweep_id).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(reason, count, example)| jagged_domain::status::ItemFailures { reason, count, example }).collect())
    }

    /// Measured inferences per second of a model (by object key) over its most
    /// recent `recent` committed shards, per execution provider.
    pub async fn throughput(&self, model_key: &str, recent: i64) -> Result<Vec<Throughput>> {
        let rows: Vec<PgThroughput> =
            sqlx::query_as(include_str!("../queries/outputs/throughput.sql")).bind(model_key).bind(recent).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| Throughput { provider: r.provider, per_sec: r.per_sec, shards: r.shards }).collect())
    }
}

/// What computed some of a sweep's committed parts.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Provenance {
    /// Model index.
    pub model_idx: i32,
    /// Execution provider.
    pub provider: String,
    /// Numeric precision ("" when not recorded).
    pub precision: String,
    /// ONNX Runtime version ("" when not recorded).
    pub runtime: String,
    /// Shards it computed.
    pub shards: i64,
}

impl Store {
    /// Per model, each (provider, precision, runtime) that computed a sweep's
    /// committed parts.
    pub async fn provenance(&self, sweep_id: i64) -> Result<Vec<Provenance>> {
        Ok(sqlx::query_as(include_str!("../queries/outputs/provenance.sql")).bind(sweep_id).fetch_all(&self.pool).await?)
    }
}
