//! Commits: one task sends the worker's commits to the coordinator, those
//! that became ready while a call was in flight together in one
//! `CompleteMany` call (each with its own outcome), or one `Complete` each
//! where the coordinator has no `CompleteMany`.

use crate::rpc::{retry, Client};
use jagged_proto::v1::{CompleteManyRequest, CompleteRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Most commits sent in one `CompleteMany` call (the coordinator takes 1024).
const MAX_COMMITS_PER_CALL: usize = 256;

/// A commit waiting to be sent, and where its outcome goes.
type ReadyCommit = (CompleteRequest, tokio::sync::oneshot::Sender<Result<(), tonic::Status>>);

/// Sends the worker's commits to the coordinator, one call at a time: the
/// commits that became ready while a call was in flight go together in the
/// next. Ends once every handle is dropped and the queue is empty.
#[derive(Clone)]
pub(crate) struct Committer {
    queue: tokio::sync::mpsc::UnboundedSender<ReadyCommit>,
}

impl Committer {
    pub(crate) fn start(client: Client, url: String, stop: Arc<AtomicBool>) -> Committer {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(send_commits(client, url, stop, rx));
        Committer { queue }
    }

    /// Commits one shard: what `Complete` answers for it (transient failures
    /// are retried until the worker is told to stop).
    pub(crate) async fn commit(&self, req: CompleteRequest) -> Result<(), tonic::Status> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((req, tx)).map_err(|_| tonic::Status::unavailable("the committer has ended"))?;
        rx.await.unwrap_or_else(|_| Err(tonic::Status::unavailable("the committer has ended")))
    }
}

/// The committer's loop (see [`Committer`]).
async fn send_commits(client: Client, url: String, stop: Arc<AtomicBool>, mut rx: tokio::sync::mpsc::UnboundedReceiver<ReadyCommit>) {
    // Until the coordinator says it has no `CompleteMany` (an older build).
    let mut many = true;
    let mut batch: Vec<ReadyCommit> = Vec::new();
    while rx.recv_many(&mut batch, MAX_COMMITS_PER_CALL).await > 0 {
        let mut singles = Vec::new();
        if many && batch.len() > 1 {
            many = send_many(&client, &url, &stop, &mut batch, &mut singles).await;
        }
        singles.append(&mut batch);
        for (commit, tx) in singles {
            let committed = retry("complete", &url, &stop, || {
                let mut c = client.clone();
                let req = commit.clone();
                async move { c.complete(req).await }
            })
            .await;
            let _ = tx.send(committed.map(|_| ()));
        }
    }
}

/// Sends `batch` in one `CompleteMany` call and answers each commit with its
/// outcome; a commit refused for a transient cause goes to `singles`, to be
/// retried on its own, as `Complete` would be. Returns false, leaving `batch`
/// as it was, when the coordinator has no `CompleteMany`.
async fn send_many(client: &Client, url: &str, stop: &AtomicBool, batch: &mut Vec<ReadyCommit>, singles: &mut Vec<ReadyCommit>) -> bool {
    let req = CompleteManyRequest { commits: batch.iter().map(|(c, _)| c.clone()).collect() };
    let sent = retry("complete", url, stop, || {
        let mut c = client.clone();
        let req = req.clone();
        async move { c.complete_many(req).await }
    })
    .await;
    match sent {
        Ok(r) => {
            let mut outcomes = r.into_inner().outcomes.into_iter();
            for (commit, tx) in batch.drain(..) {
                let status = match outcomes.next() {
                    Some(o) if o.code == tonic::Code::Ok as i32 => None,
                    Some(o) => Some(tonic::Status::new(tonic::Code::from(o.code), o.message)),
                    None => Some(tonic::Status::unavailable("the coordinator gave no outcome for this commit")),
                };
                match status {
                    None => drop(tx.send(Ok(()))),
                    Some(s) if jagged_proto::status_is_retryable(&s) && !stop.load(Ordering::Relaxed) => singles.push((commit, tx)),
                    Some(s) => drop(tx.send(Err(s))),
                }
            }
        }
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            tracing::info!(coordinator = %url, "the coordinator has no CompleteMany; committing one shard per call");
            return false;
        }
        Err(s) => {
            for (_, tx) in batch.drain(..) {
                let _ = tx.send(Err(s.clone()));
            }
        }
    }
    true
}
