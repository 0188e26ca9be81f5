//! Group commit: concurrent commits (`Complete` calls, and each commit of a
//! `CompleteMany` call) are written in one statement
//! ([`jagged_store::group`]) with [`Store::complete_many`]. Under load this turns
//! many short transactions on the same sweep into a few larger ones.

use jagged_store::group::Group;
use jagged_store::{now_ms, Commit, Store, StoreError};
use std::sync::Arc;

/// Most commits written in one statement.
const MAX_BATCH: usize = 512;

/// The pending commits and the batch in flight.
#[derive(Clone)]
pub struct GroupCommit {
    group: Arc<Group<Commit, Result<(), StoreError>>>,
}

impl Default for GroupCommit {
    fn default() -> GroupCommit {
        GroupCommit { group: Arc::new(Group::new("commit batch")) }
    }
}

impl GroupCommit {
    /// Commits shards, possibly together with others: one result per commit,
    /// in order. A call's commits join the pending group at once, so they are
    /// written in the same statement (up to [`MAX_BATCH`]).
    pub async fn commit_all(&self, store: &Store, commits: Vec<Commit>) -> Vec<Result<(), StoreError>> {
        let store = store.clone();
        self.group
            .run_all(commits, MAX_BATCH, move |commits| {
                let store = store.clone();
                async move { store.complete_many(&commits, now_ms()).await }
            })
            .await
            .into_iter()
            .map(|r| r.and_then(|r| r))
            .collect()
    }
}
