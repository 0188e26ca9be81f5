//! The `workers` table: who registered and when each was last seen
//! (`queries/workers/`).

use crate::{ts, Result, Store, StoreError};

impl Store {
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

    /// Workers seen since `since_ms` that have not left.
    pub async fn workers_alive(&self, since_ms: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("../queries/workers/count_alive.sql")).bind(ts(since_ms)).fetch_one(&self.pool).await?)
    }

    /// Records that a worker was seen at `now_ms`; a worker id that never
    /// registered is refused.
    pub(crate) async fn touch_worker(&self, worker: i64, now_ms: i64) -> Result<()> {
        let n = sqlx::query(include_str!("../queries/workers/touch.sql")).bind(worker).bind(ts(now_ms)).execute(&self.pool).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NoWorker(worker));
        }
        Ok(())
    }

    /// Records that a worker stopped cleanly: it no longer counts as live.
    pub async fn leave_worker(&self, worker: i64, now_ms: i64) -> Result<()> {
        let n = sqlx::query(include_str!("../queries/workers/leave.sql")).bind(worker).bind(ts(now_ms)).execute(&self.pool).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NoWorker(worker));
        }
        Ok(())
    }
}

/// A live worker and a shard it holds (if any), for the dashboard.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct LiveWorker {
    /// Worker id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its device.
    pub device: String,
    /// Last heartbeat.
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// A shard it holds.
    pub shard_id: Option<i64>,
    /// That shard's sweep.
    pub sweep_id: Option<i64>,
    /// Its model index.
    pub model_idx: Option<i32>,
    /// Its family index.
    pub family_idx: Option<i32>,
    /// Its first image.
    pub image_lo: Option<i32>,
    /// Its last image (exclusive).
    pub image_hi: Option<i32>,
    /// The attempt.
    pub attempt: Option<i32>,
    /// Busy seconds of the attempt so far (from heartbeats).
    pub busy_seconds: Option<f64>,
    /// When it was leased.
    pub leased_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store {
    /// Workers seen since `since_ms` that have not left, one row per shard each
    /// holds (one row with no shard for an idle one).
    pub async fn live_workers(&self, since_ms: i64) -> Result<Vec<LiveWorker>> {
        Ok(sqlx::query_as(include_str!("../queries/workers/live.sql")).bind(ts(since_ms)).fetch_all(&self.pool).await?)
    }
}
