//! Group commit: concurrent `Complete` calls are written in one statement.
//!
//! Each call adds its commit to a pending list. Whoever finds no batch in
//! flight takes the whole list and writes it with [`Store::complete_many`]; the
//! calls that arrived meanwhile wait and go together in the next batch. Under
//! load this turns many short transactions on the same sweep row into a few
//! larger ones; with one caller it is a single statement, as before. The batch
//! runs in its own task, so a caller that goes away cannot cut it short.

use jagged_store::{now_ms, Commit, Store, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most commits written in one statement.
const MAX_BATCH: usize = 512;

type Pending = Vec<(Commit, oneshot::Sender<Result<(), StoreError>>)>;

fn lost_batch() -> StoreError {
    StoreError::Unavailable("a commit batch failed; retry".into())
}

/// A commit's result once its batch has run (an error if the batch was lost).
fn outcome(rx: &mut oneshot::Receiver<Result<(), StoreError>>) -> Option<Result<(), StoreError>> {
    match rx.try_recv() {
        Ok(r) => Some(r),
        Err(oneshot::error::TryRecvError::Closed) => Some(Err(lost_batch())),
        Err(oneshot::error::TryRecvError::Empty) => None,
    }
}

/// The pending commits and the batch in flight.
#[derive(Clone, Default)]
pub struct GroupCommit {
    pending: Arc<Mutex<Pending>>,
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl GroupCommit {
    /// Commits one shard, possibly together with others.
    pub async fn commit(&self, store: &Store, commit: Commit) -> Result<(), StoreError> {
        let (tx, mut rx) = oneshot::channel();
        self.pending.lock().unwrap().push((commit, tx));
        loop {
            if let Some(r) = outcome(&mut rx) {
                return r;
            }
            let guard = self.flight.lock().await;
            if let Some(r) = outcome(&mut rx) {
                return r;
            }
            let batch: Pending = {
                let mut p = self.pending.lock().unwrap();
                let n = p.len().min(MAX_BATCH);
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                drop(guard);
                continue;
            }
            let store = store.clone();
            let task = tokio::spawn(async move {
                let (commits, senders): (Vec<Commit>, Vec<_>) = batch.into_iter().unzip();
                match store.complete_many(&commits, now_ms()).await {
                    Ok(results) => senders.into_iter().zip(results).for_each(|(s, r)| drop(s.send(r))),
                    Err(e) => {
                        // A database error fails every commit of the batch; each caller is
                        // told it may retry.
                        let msg = e.to_string();
                        senders.into_iter().for_each(|s| drop(s.send(Err(StoreError::Unavailable(msg.clone())))));
                    }
                }
            });
            if task.await.is_err() {
                drop(guard);
                return Err(lost_batch());
            }
            drop(guard);
            // Ours was in this batch, or is still pending (more than MAX_BATCH
            // were): look again.
        }
    }
}
