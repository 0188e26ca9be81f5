//! Leasing ahead: shards leased before they are needed, so a fast worker
//! never waits on a lease call.

use crate::compute::Busy;
use crate::engines::Engines;
use crate::heartbeat::HeldLeases;
use crate::rpc::{retry, Client};
use crate::{WorkerConfig, WorkerError};
use jagged_proto::v1::LeaseRequest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A shard leased ahead of its run, holding its room in the worker's hand until
/// its computation ends.
pub(crate) struct Leased {
    pub wire: jagged_proto::v1::ShardTask,
    pub busy: Arc<Busy>,
    pub room: tokio::sync::OwnedSemaphorePermit,
}

/// Leases shards for the compute loop, ahead of need.
pub(crate) struct Feeder {
    pub config: WorkerConfig,
    pub client: Client,
    pub worker_id: i64,
    pub stop: Arc<AtomicBool>,
    pub held: HeldLeases,
    pub engines: Engines,
    /// `prefetch + 1` permits: one per shard leased and not yet computed.
    pub room: Arc<tokio::sync::Semaphore>,
}

impl Feeder {
    /// Leases whenever half the room is free, asking for all of it in one call,
    /// until told to stop, the sweep (with `sweep`) is over, or (with
    /// `exit_when_idle`) nothing was in hand and no work was ready for that long.
    /// Dropping `tx` ends the compute loop once it has run what was sent.
    pub(crate) async fn run(self, tx: tokio::sync::mpsc::UnboundedSender<Leased>) -> Result<(), WorkerError> {
        let Feeder { config, client, worker_id, stop, held, engines, room } = self;
        let mut idle_since = Instant::now();
        loop {
            // Wait until half the hand is free, so one call leases several
            // shards, then take all the room there is.
            let Ok(mut rooms) = room.clone().acquire_many_owned(config.prefetch.div_ceil(2).max(1)).await else { return Ok(()) };
            while let Ok(p) = room.clone().try_acquire_owned() {
                rooms.merge(p);
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let max_shards = rooms.num_permits() as u32;
            let leased = retry("lease", &config.coordinator, &stop, || {
                let mut c = client.clone();
                let loaded: Vec<String> = engines.loaded();
                let sweep_id = config.sweep.unwrap_or(0);
                async move { c.lease(LeaseRequest { worker_id, max_shards, loaded_models: loaded, sweep_id }).await }
            })
            .await;
            let tasks = match leased {
                Ok(r) => r.into_inner().shards,
                Err(s) if stop.load(Ordering::Relaxed) => {
                    tracing::info!(error = %s.message(), "stopping");
                    return Ok(());
                }
                Err(s) if config.sweep.is_some() && s.code() == tonic::Code::FailedPrecondition => {
                    tracing::info!(reason = %s.message(), "the sweep is over; exiting");
                    return Ok(());
                }
                Err(s) => return Err(WorkerError::Lease(s)),
            };
            if tasks.is_empty() {
                drop(rooms);
                // Idle only with nothing in hand: a shard still computing or
                // committing may yet bring work (a radius sweep's next ring).
                if !held.lock().unwrap().is_empty() {
                    idle_since = Instant::now();
                } else if config.exit_when_idle.is_some_and(|limit| idle_since.elapsed() >= limit) {
                    tracing::info!("no work left; exiting");
                    return Ok(());
                }
                tokio::time::sleep(config.idle_poll).await;
                continue;
            }
            idle_since = Instant::now();
            for wire in tasks {
                let room = rooms.split(1).expect("one room per shard leased");
                let busy = Arc::new(Busy::default());
                held.lock().unwrap().insert(wire.shard_id, (wire.lease_epoch, busy.clone()));
                if tx.send(Leased { wire, busy, room }).is_err() {
                    return Ok(());
                }
            }
        }
    }
}
