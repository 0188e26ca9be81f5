//! Cost accounting: what a sweep's attempts spent (`queries/cost/`), and the
//! prices per device kind given at submit.

use crate::{Result, Store, StoreError};
use jagged_domain::cost::{Outcome, Prices, SpentLine};

#[derive(sqlx::FromRow)]
struct PgSpent {
    model_idx: i32,
    worker_id: i64,
    worker: String,
    device: String,
    outcome: String,
    attempts: i64,
    busy_seconds: f64,
    wall_seconds: f64,
    inferences: i64,
}

/// What one (model, worker, outcome) group of a sweep's attempts spent.
pub type Spent = SpentLine;

impl Store {
    /// What a sweep's attempts spent, by model, worker and outcome: committed
    /// ones, and those that failed, were handed back or were abandoned.
    pub async fn spent(&self, sweep_id: i64) -> Result<Vec<Spent>> {
        let rows: Vec<PgSpent> = sqlx::query_as(include_str!("../queries/cost/spent.sql")).bind(sweep_id).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| {
                let outcome = Outcome::parse(&r.outcome).ok_or_else(|| StoreError::Data(format!("unknown attempt outcome `{}`", r.outcome)))?;
                Ok(SpentLine {
                    model_idx: r.model_idx.max(0) as usize,
                    worker_id: r.worker_id,
                    worker: r.worker,
                    device: r.device,
                    outcome,
                    attempts: r.attempts,
                    busy_seconds: r.busy_seconds,
                    wall_seconds: r.wall_seconds,
                    inferences: r.inferences,
                })
            })
            .collect()
    }

    /// The prices per device-hour given at a sweep's submit.
    pub async fn prices(&self, sweep_id: i64) -> Result<Prices> {
        let v: serde_json::Value = sqlx::query_scalar(include_str!("../queries/sweeps/prices.sql"))
            .bind(sweep_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSweep(sweep_id))?;
        serde_json::from_value(v).map_err(|e| StoreError::Data(format!("sweep {sweep_id}: prices: {e}")))
    }

    /// Sets a sweep's prices per device-hour (replacing those given before).
    pub async fn set_prices(&self, sweep_id: i64, prices: &Prices) -> Result<()> {
        let v = serde_json::to_value(prices).map_err(|e| StoreError::Data(e.to_string()))?;
        sqlx::query(include_str!("../queries/sweeps/set_prices.sql")).bind(sweep_id).bind(v).execute(&self.pool).await?;
        Ok(())
    }
}
