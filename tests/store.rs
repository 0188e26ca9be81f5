use jagged_domain::lease::{LeasePolicy, ShardState};
use jagged_domain::plan::plan;
use jagged_store::{FailedItem, Output, StoreError};
use jagged_testkit::{resolved, store};

const CROP: &str = "[[families]]\nkind = \"crop\"\nmax_shift = 1\n";

fn policy() -> LeasePolicy {
    LeasePolicy { lease_ms: 1_000, heartbeat_ms: 200, backoff_base_ms: 500, backoff_cap_ms: 4_000 }
}

/// The output a worker commits for a claimed shard: its own part key.
fn output(c: &jagged_store::Claimed) -> Output {
    let key = jagged_domain::keys::part_key(c.sweep_id, c.id, c.attempt, c.lease_epoch);
    Output { object_key: key, rows: 9, sha256: "00".into(), lease_epoch: c.lease_epoch, worker_id: 1, provider: "cpu".into(), seconds: 0.1 }
}

async fn sweep_with(store: &jagged_store::Store, images: usize, per: u32, attempts: u32) -> i64 {
    let s = resolved(images, CROP, per, attempts);
    store.insert_sweep("", &s, &plan(&s)).await.unwrap()
}

const T0: i64 = 1_900_000_000_000;

#[tokio::test]
async fn claim_hands_out_each_shard_once_under_concurrency() {
    let (_pg, store) = store().await;
    sweep_with(&store, 40, 1, 3).await; // 40 shards
    let p = policy();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let c = store.claim(w, 3, T0, &p).await.unwrap();
                if c.is_empty() {
                    return mine;
                }
                mine.extend(c);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut ids: Vec<i64> = all.iter().map(|c| c.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every shard claimed exactly once");
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|c| c.attempt == 1 && c.lease_epoch == 1 && c.deadline_ms == T0 + 1_000));
}

#[tokio::test]
async fn expired_lease_is_requeued_with_backoff() {
    let (_pg, store) = store().await;
    sweep_with(&store, 1, 1, 3).await;
    let p = policy();
    let c = store.claim(1, 1, T0, &p).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(store.reap(T0 + 1_000, &p, 100).await.unwrap(), 0, "not expired at the deadline");
    assert_eq!(store.reap(T0 + 1_001, &p, 100).await.unwrap(), 1);
    // Backoff after attempt 1 is 500 ms from the reap.
    assert!(store.claim(2, 1, T0 + 1_400, &p).await.unwrap().is_empty(), "still backing off");
    let again = store.claim(2, 1, T0 + 1_501, &p).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].attempt, again[0].lease_epoch), (2, 2));
}

#[tokio::test]
async fn stale_commit_is_refused_and_never_counted() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 1, 1, 3).await;
    let p = policy();
    let first = store.claim(1, 1, T0, &p).await.unwrap().remove(0);
    store.reap(T0 + 5_000, &p, 100).await.unwrap();
    let second = store.claim(2, 1, T0 + 6_000, &p).await.unwrap().remove(0);
    assert_eq!(second.id, first.id);
    // The frozen first holder wakes up and tries to commit.
    let e = store.complete(first.id, first.lease_epoch, 1, &output(&first), &[], T0 + 6_100).await.unwrap_err();
    assert!(matches!(e, StoreError::Stale(id) if id == first.id), "{e}");
    // A key outside the attempt's own part (another sweep's prefix) is refused, and
    // the shard stays leased to its holder.
    let mut escape = output(&second);
    escape.object_key = format!("sweeps/{}/parts/../../other/x.parquet", second.sweep_id);
    let e = store.complete(second.id, second.lease_epoch, 2, &escape, &[], T0 + 6_150).await.unwrap_err();
    assert!(matches!(e, StoreError::BadKey { .. }), "{e}");
    assert_eq!(store.leased_count(sweep).await.unwrap(), 1);
    store.complete(second.id, second.lease_epoch, 2, &output(&second), &[], T0 + 6_200).await.unwrap();
    // A second commit of the same lease is refused too.
    assert!(matches!(store.complete(second.id, second.lease_epoch, 2, &output(&second), &[], T0 + 6_300).await, Err(StoreError::Stale(_))));
    let outs = store.outputs(sweep).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].object_key, output(&second).object_key);
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.done, s.state.as_str(), s.inferences_done), (1, "done", 9));
}

#[tokio::test]
async fn poison_shard_fails_after_max_attempts_with_its_last_error() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 2, 1, 2).await; // two shards, two attempts each
    let p = policy();
    let a = store.claim(1, 1, T0, &p).await.unwrap().remove(0);
    assert_eq!(store.fail(a.id, a.lease_epoch, "boom 1", true, T0, &p).await.unwrap(), ShardState::Queued);
    let b = store.claim(1, 2, T0 + 10_000, &p).await.unwrap();
    let a2 = b.iter().find(|c| c.id == a.id).unwrap();
    assert_eq!(store.fail(a2.id, a2.lease_epoch, "boom 2", true, T0 + 10_000, &p).await.unwrap(), ShardState::Failed);
    let errs = store.shard_errors(sweep, 10).await.unwrap();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].error, "boom 2");
    assert_eq!(store.sweep(sweep).await.unwrap().state, "running", "the other shard is still out");
    let other = b.iter().find(|c| c.id != a.id).unwrap();
    let bad = FailedItem { image_idx: 1, image_name: "1.png".into(), reason: "corrupt".into() };
    store.complete(other.id, other.lease_epoch, 1, &output(other), &[bad], T0 + 10_500).await.unwrap();
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.state.as_str(), s.done, s.failed, s.failed_items), ("done", 1, 1, 1));
    // A non-retryable error fails at once.
    let sweep2 = sweep_with(&store, 1, 1, 5).await;
    let c = store.claim(1, 1, T0 + 20_000, &p).await.unwrap().remove(0);
    assert_eq!(store.fail(c.id, c.lease_epoch, "model does not load", false, T0 + 20_000, &p).await.unwrap(), ShardState::Failed);
    assert_eq!(store.sweep(sweep2).await.unwrap().state, "done");
}

#[tokio::test]
async fn heartbeat_extends_held_leases_and_reports_lost_ones() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 2, 1, 3).await;
    let p = policy();
    let c = store.claim(7, 2, T0, &p).await.unwrap();
    let held: Vec<(i64, i64)> = c.iter().map(|c| (c.id, c.lease_epoch)).collect();
    assert!(store.heartbeat(7, &held, T0 + 900, &p).await.unwrap().is_empty());
    assert_eq!(store.reap(T0 + 1_500, &p, 100).await.unwrap(), 0, "renewed to T0 + 1900");
    store.cancel(sweep, T0 + 1_600).await.unwrap();
    let lost = store.heartbeat(7, &held, T0 + 1_700, &p).await.unwrap();
    assert_eq!(lost.len(), 2, "cancelled shards are reported lost");
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.state.as_str(), s.cancelled), ("cancelled", 2));
    assert!(store.claim(8, 5, T0 + 2_000, &p).await.unwrap().is_empty());
}
