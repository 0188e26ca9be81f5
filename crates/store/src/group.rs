//! Grouped statements: concurrent requests of one kind written together.
//!
//! Each call adds its request to a pending list. Whoever finds no statement in
//! flight takes the list (up to a limit) and runs it as one; the calls that
//! arrived meanwhile wait and go together in the next. Under load this turns
//! many short transactions into a few larger ones; with one caller it is a
//! single statement, as without grouping. The statement runs in its own task,
//! so a caller that goes away cannot cut it short. Commits
//! (`jagged_coordinator`'s group commit) and claims ([`crate::Store::claim_from`])
//! go this way.

use crate::{Result, StoreError};
use std::future::Future;
use std::sync::Mutex;
use tokio::sync::oneshot;

type Pending<T, R> = Vec<(T, oneshot::Sender<Result<R>>)>;

/// Requests waiting for their statement, and the statement in flight.
pub struct Group<T, R> {
    pending: Mutex<Pending<T, R>>,
    flight: tokio::sync::Mutex<()>,
    /// What a statement is, for the error its callers get when it is lost.
    what: &'static str,
}

impl<T, R> Group<T, R> {
    /// An empty group whose statements are `what` (e.g. "commit batch").
    pub fn new(what: &'static str) -> Group<T, R> {
        Group { pending: Mutex::new(Vec::new()), flight: tokio::sync::Mutex::new(()), what }
    }

    fn lost(&self) -> StoreError {
        StoreError::Unavailable(format!("a {} failed; retry", self.what))
    }

    /// A request's result once its statement has run (an error if it was lost).
    fn outcome(&self, rx: &mut oneshot::Receiver<Result<R>>) -> Option<Result<R>> {
        match rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(self.lost())),
            Err(oneshot::error::TryRecvError::Empty) => None,
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Group<T, R> {
    /// Runs `request` in a statement with whatever else is waiting (at most
    /// `max` requests): `write` gets them in order and gives one result per
    /// request, in the same order, or an error that fails them all (each
    /// caller is told it may retry).
    pub async fn run<F, Fut>(&self, request: T, max: usize, write: F) -> Result<R>
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        self.pending.lock().unwrap().push((request, tx));
        loop {
            if let Some(r) = self.outcome(&mut rx) {
                return r;
            }
            let guard = self.flight.lock().await;
            if let Some(r) = self.outcome(&mut rx) {
                return r;
            }
            let batch: Pending<T, R> = {
                let mut p = self.pending.lock().unwrap();
                let n = p.len().min(max.max(1));
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                drop(guard);
                continue;
            }
            let (requests, senders): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            let written = write(requests);
            let task = tokio::spawn(async move {
                match written.await {
                    Ok(results) => senders.into_iter().zip(results).for_each(|(s, r)| drop(s.send(Ok(r)))),
                    Err(e) => {
                        let msg = e.to_string();
                        senders.into_iter().for_each(|s| drop(s.send(Err(StoreError::Unavailable(msg.clone())))));
                    }
                }
            });
            if task.await.is_err() {
                drop(guard);
                return Err(self.lost());
            }
            drop(guard);
            // Ours was in this statement, or is still waiting (more than `max`
            // were): look again.
        }
    }
}
