//! Heartbeats: the leases in hand renewed every few seconds, and those the
//! coordinator says were lost, so their shards are abandoned.

use crate::compute::Busy;
use crate::rpc::Client;
use jagged_proto::v1::{HeartbeatRequest, HeldShard};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Leases the coordinator said this worker lost, as (shard, lease epoch): a
/// shard lost under one epoch may be leased here again under another.
pub(crate) type Lost = Arc<Mutex<HashSet<(i64, i64)>>>;

/// Leases in hand: shard -> (lease epoch, busy time of its attempt so far).
pub(crate) type HeldLeases = Arc<Mutex<HashMap<i64, (i64, Arc<Busy>)>>>;

/// Renews the leases in `held` every `every` until aborted, and records in
/// `lost` those the coordinator no longer grants.
pub(crate) async fn heartbeat(client: Client, url: String, worker_id: i64, held: HeldLeases, lost: Lost, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let shards: Vec<HeldShard> = held
            .lock()
            .unwrap()
            .iter()
            .map(|(&shard_id, (lease_epoch, busy))| HeldShard { shard_id, lease_epoch: *lease_epoch, busy_seconds: busy.seconds() })
            .collect();
        let mut c = client.clone();
        match c.heartbeat(HeartbeatRequest { worker_id, held: shards.clone(), leaving: false }).await {
            Ok(r) => {
                let gone = r.into_inner().lost;
                if !gone.is_empty() {
                    tracing::warn!(shards = ?gone, "lost leases; abandoning those shards");
                    // Only leases still held as they were sent: one let go meanwhile
                    // (reported, or leased again under a new epoch) is not lost.
                    let held = held.lock().unwrap();
                    let still = shards.iter().filter(|h| gone.contains(&h.shard_id) && held.get(&h.shard_id).map(|x| x.0) == Some(h.lease_epoch));
                    lost.lock().unwrap().extend(still.map(|h| (h.shard_id, h.lease_epoch)));
                }
            }
            Err(s) => tracing::warn!(coordinator = %url, error = %jagged_proto::cause(&s), "heartbeat failed"),
        }
    }
}

/// Tells the coordinator this worker is leaving, so status stops counting it
/// at once (best effort: otherwise it stops after three missed heartbeats).
pub(crate) async fn say_goodbye(client: &Client, worker_id: i64) {
    let mut c = client.clone();
    let bye = c.heartbeat(HeartbeatRequest { worker_id, held: vec![], leaving: true });
    if let Ok(Err(s)) = tokio::time::timeout(Duration::from_secs(2), bye).await {
        tracing::warn!(error = %s.message(), "could not tell the coordinator this worker is leaving");
    }
}
