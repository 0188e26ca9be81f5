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
