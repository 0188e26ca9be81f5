//! The evidence weighed before a shard fails as one that kills its workers:
//! which workers of its run of lost leases came back (they were frozen or cut
//! off, not killed), and what the rest of the fleet lost meanwhile.

use crate::{ts, Result};
use jagged_domain::lease::{Counters, Fleet, LeasePolicy};

#[derive(sqlx::FromRow)]
struct PgFleet {
    attempts: i32,
    lost: i32,
    vanished: i32,
    window_seconds: Option<f64>,
}

/// The counters of shard `shard` without the workers of its run that were seen
/// again after losing it, and the fleet's evidence for the run with `worker`
/// (whose lease, taken at `leased_ms`, just expired), when the run is long
/// enough to ask ([`LeasePolicy::suspects`]).
pub(super) async fn weigh(
    tx: &mut sqlx::PgConnection,
    shard: i64,
    before: &Counters,
    worker: i64,
    leased_ms: i64,
    now_ms: i64,
    policy: &LeasePolicy,
) -> Result<(Counters, Option<Fleet>)> {
    if !policy.suspects(before, worker) {
        return Ok((before.clone(), None));
    }
    let returned: Vec<i64> =
        sqlx::query_scalar(include_str!("../../queries/shards/returned.sql")).bind(shard).bind(&before.lost_by).fetch_all(&mut *tx).await?;
    let mut counters = before.clone();
    counters.lost_by.retain(|w| !returned.contains(w));
    if !policy.suspects(&counters, worker) {
        return Ok((counters, None));
    }
    let mut run = counters.lost_by.clone();
    run.push(worker);
    let f: PgFleet = sqlx::query_as(include_str!("../../queries/shards/fleet.sql"))
        .bind(shard)
        .bind(&run)
        .bind(ts(now_ms))
        .bind(policy.lease_ms as f64 / 1000.0)
        .bind(ts(leased_ms.min(now_ms)))
        .fetch_one(&mut *tx)
        .await?;
    let fleet = Fleet {
        attempts: f.attempts.max(0) as u32,
        lost: f.lost.max(0) as u32,
        vanished: f.vanished.max(0) as u32,
        window_seconds: f.window_seconds.unwrap_or(0.0),
    };
    Ok((counters, Some(fleet)))
}
