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
        self.run_all(vec![request], max, write).await.pop().unwrap_or_else(|| Err(self.lost()))
    }

    /// Runs several requests as [`Group::run`] runs one, all joining the
    /// pending list at once (so they go in the same statement, up to `max`):
    /// one result per request, in order.
    pub async fn run_all<F, Fut>(&self, requests: Vec<T>, max: usize, write: F) -> Vec<Result<R>>
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
    {
        let mut waiting: Vec<oneshot::Receiver<Result<R>>> = Vec::with_capacity(requests.len());
        {
            let mut pending = self.pending.lock().unwrap();
            for request in requests {
                let (tx, rx) = oneshot::channel();
                pending.push((request, tx));
                waiting.push(rx);
            }
        }
        let mut results: Vec<Option<Result<R>>> = waiting.iter().map(|_| None).collect();
        let collect = |waiting: &mut [oneshot::Receiver<Result<R>>], results: &mut [Option<Result<R>>]| {
            for (rx, r) in waiting.iter_mut().zip(results.iter_mut()).filter(|(_, r)| r.is_none()) {
                *r = self.outcome(rx);
            }
            results.iter().all(Option::is_some)
        };
        loop {
            if collect(&mut waiting, &mut results) {
                break;
            }
            let guard = self.flight.lock().await;
            if collect(&mut waiting, &mut results) {
                break;
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
            // A lost statement drops its senders: its requests read as lost.
            let _ = task.await;
            drop(guard);
            // Ours were in this statement, or some are still waiting (more
            // than `max` were): look again.
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(self.lost()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    type Written = Arc<Mutex<Vec<Vec<u32>>>>;
    type Statement = std::pin::Pin<Box<dyn Future<Output = Result<Vec<u32>>> + Send>>;

    /// A statement that notes its requests, takes `pause`, and answers each
    /// request `x` with `10 x` (or fails when it holds a 0).
    fn statement(written: &Written, pause: Duration) -> impl Fn(Vec<u32>) -> Statement {
        let written = written.clone();
        move |batch: Vec<u32>| {
            let written = written.clone();
            Box::pin(async move {
                written.lock().unwrap().push(batch.clone());
                tokio::time::sleep(pause).await;
                if batch.contains(&0) {
                    return Err(StoreError::Refused("a zero".into()));
                }
                Ok(batch.iter().map(|x| x * 10).collect())
            })
        }
    }

    fn values(results: Vec<Result<u32>>) -> Vec<u32> {
        results.into_iter().map(|r| r.unwrap()).collect()
    }

    #[tokio::test]
    async fn a_callers_requests_go_in_one_statement_up_to_the_limit() {
        let group: Group<u32, u32> = Group::new("test statement");
        let written = Written::default();
        assert_eq!(values(group.run_all(vec![1, 2, 3], 8, statement(&written, Duration::ZERO)).await), [10, 20, 30]);
        assert_eq!(group.run(4, 8, statement(&written, Duration::ZERO)).await.unwrap(), 40);
        assert_eq!(values(group.run_all(vec![5, 6, 7, 8, 9], 2, statement(&written, Duration::ZERO)).await), [50, 60, 70, 80, 90]);
        assert!(group.run_all(vec![], 2, statement(&written, Duration::ZERO)).await.is_empty());
        assert_eq!(*written.lock().unwrap(), [vec![1, 2, 3], vec![4], vec![5, 6], vec![7, 8], vec![9]]);
    }

    #[tokio::test]
    async fn requests_that_arrive_during_a_statement_go_together_in_the_next() {
        let group: Arc<Group<u32, u32>> = Arc::new(Group::new("test statement"));
        let written = Written::default();
        let first = {
            let (group, written) = (group.clone(), written.clone());
            tokio::spawn(async move { group.run(1, 64, statement(&written, Duration::from_millis(200))).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let callers: Vec<_> = [vec![2, 3], vec![4, 5, 6]]
            .into_iter()
            .map(|requests| {
                let (group, written) = (group.clone(), written.clone());
                tokio::spawn(async move { group.run_all(requests, 64, statement(&written, Duration::ZERO)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), 10);
        let mut answers = Vec::new();
        for c in callers {
            answers.push(values(c.await.unwrap()));
        }
        assert_eq!(answers, [vec![20, 30], vec![40, 50, 60]]);
        let written = written.lock().unwrap().clone();
        assert_eq!(written.len(), 2, "{written:?}");
        let mut second = written[1].clone();
        second.sort();
        assert_eq!(second, [2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn a_failed_statement_fails_each_of_its_requests_as_retryable() {
        let group: Group<u32, u32> = Group::new("test statement");
        let written = Written::default();
        let results = group.run_all(vec![1, 0, 2], 8, statement(&written, Duration::ZERO)).await;
        assert_eq!(results.len(), 3);
        for r in results {
            assert!(matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("a zero")), "{r:?}");
        }
        // The group goes on.
        assert_eq!(values(group.run_all(vec![3], 8, statement(&written, Duration::ZERO)).await), [30]);
    }
}
