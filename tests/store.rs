use jagged_domain::lease::{LeasePolicy, ShardState};
use jagged_domain::plan::plan;
use jagged_domain::status::SweepState;
use jagged_domain::task::FailedItem;
use jagged_store::{Commit, Held, Output, RunningSweep, StoreError};
use jagged_testkit::{resolved, store};

pub(crate) const CROP: &str = "[[families]]\nkind = \"crop\"\nmax_shift = 1\n";

pub(crate) fn policy() -> LeasePolicy {
    LeasePolicy { lease_ms: 1_000, heartbeat_ms: 200, backoff_base_ms: 500, backoff_cap_ms: 4_000, ..Default::default() }
}

/// The output a worker commits for a claimed shard: its own part key.
pub(crate) fn output(c: &jagged_store::Claimed) -> Output {
    let key = jagged_domain::keys::part_key(c.sweep_id, c.id, c.attempt, c.lease_epoch);
    Output {
        object_key: key,
        rows: 9,
        sha256: "00".into(),
        lease_epoch: c.lease_epoch,
        worker_id: 1,
        provider: "cpu".into(),
        seconds: 0.1,
        model_key: None,
        busy_seconds: 0.05,
        precision: Some("fp32".into()),
        runtime: None,
    }
}

pub(crate) async fn sweep_with(store: &jagged_store::Store, images: usize, per: u32, attempts: u32) -> i64 {
    let s = resolved(images, CROP, per, attempts);
    store.insert_sweep("", &s, &plan(&s)).await.unwrap()
}

pub(crate) const T0: i64 = 1_900_000_000_000;

/// Concurrent claims through one handle (gathered into shared statements) and
/// through another (as a second coordinator's): each shard goes to one claim,
/// no claim gets more than it asked for, and each shard is leased to the
/// worker whose claim got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_hands_out_each_shard_once_under_concurrency() {
    let (pg, store) = store().await;
    let db = crate::util::db(&pg.url()).await;
    let other = jagged_store::Store::connect(&pg.url(), 4).await.unwrap();
    sweep_with(&store, 40, 1, 3).await; // 40 shards
    let p = policy();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let store = if w < 6 { store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let want = 1 + w % 3;
                let c = store.claim(w, want, T0, &p).await.unwrap();
                assert!(c.len() as i64 <= want, "{} shards for a claim of {want}", c.len());
                if c.is_empty() {
                    return mine;
                }
                mine.extend(c.into_iter().map(|c| (w, c)));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    for (w, c) in &all {
        let holder: Option<i64> = sqlx::query_scalar("select worker_id from shards where id = $1").bind(c.id).fetch_one(&db).await.unwrap();
        assert_eq!(holder, Some(*w), "shard {} is leased to the worker that claimed it", c.id);
    }
    let all: Vec<_> = all.into_iter().map(|(_, c)| c).collect();
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

/// A reaper pass from a point on looks only at deadlines from that point on;
/// a pass over all finds the rest.
#[tokio::test]
async fn a_reaper_pass_from_a_point_leaves_earlier_deadlines_to_a_full_pass() {
    let (_pg, store) = store().await;
    sweep_with(&store, 2, 1, 3).await;
    let p = policy();
    assert_eq!(store.claim(1, 1, T0, &p).await.unwrap().len(), 1); // deadline T0 + 1000
    assert_eq!(store.claim(2, 1, T0 + 3_000, &p).await.unwrap().len(), 1); // deadline T0 + 4000
    assert_eq!(store.reap_since(T0 + 5_000, Some(T0 + 2_000), &p, 100).await.unwrap(), 1, "the later deadline only");
    assert_eq!(store.reap_since(T0 + 5_000, Some(T0 + 2_000), &p, 100).await.unwrap(), 0);
    assert_eq!(store.reap_since(T0 + 5_000, Some(T0 + 1_000), &p, 100).await.unwrap(), 1, "from the earlier deadline on");
    assert_eq!(store.reap_since(T0 + 5_000, None, &p, 100).await.unwrap(), 0, "nothing left");
    assert_eq!(store.claim(1, 1, T0, &p).await.unwrap().len(), 0, "both backing off");
}

/// Claims go on from where the last one ended (past index entries a held
/// snapshot keeps), yet a shard queued again behind that point is found: at
/// once when nothing lies ahead, and within the rescan interval otherwise.
#[tokio::test]
async fn claims_resume_past_claimed_shards_and_still_find_requeued_ones() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 5, 1, 3).await; // 5 shards
    let p = policy();
    let first = store.claim_from(1, sweep, None, 2, T0, &p).await.unwrap();
    let ids: Vec<i64> = first.iter().map(|c| c.id).collect();
    store.hand_back(ids[0], first[0].lease_epoch, 0.0, T0 + 10, &p).await.unwrap();
    // Work lies ahead of the cursor: it comes first; the handed-back shard waits.
    let next = store.claim_from(2, sweep, None, 1, T0 + 20, &p).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].id > ids[1], "{next:?} after {ids:?}");
    // Once the rescan interval has passed, the claim starts over and finds it.
    let later = T0 + 20 + jagged_store::shards::RESCAN_MS;
    let again = store.claim_from(3, sweep, None, 1, later, &p).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempt), (1, ids[0], 2), "{again:?}");
    // Asking for more than lies ahead takes what is ahead and then what is behind.
    store.hand_back(again[0].id, again[0].lease_epoch, 0.0, later + 1, &p).await.unwrap();
    let rest = store.claim_from(4, sweep, None, 10, later + 2, &p).await.unwrap();
    let mut got: Vec<i64> = rest.iter().map(|c| c.id).collect();
    got.sort();
    assert_eq!(got.len(), 3, "{rest:?}");
    assert!(got.contains(&ids[0]), "{got:?}");
    assert!(store.claim_from(5, sweep, None, 10, later + 3, &p).await.unwrap().is_empty());

    // The same within one model (the cursor is then an id).
    let sweep = sweep_with(&store, 5, 1, 3).await;
    let first = store.claim_from(1, sweep, Some(0), 2, T0, &p).await.unwrap();
    store.hand_back(first[0].id, first[0].lease_epoch, 0.0, T0 + 10, &p).await.unwrap();
    let next = store.claim_from(2, sweep, Some(0), 1, T0 + 20, &p).await.unwrap();
    assert!(next.len() == 1 && next[0].id > first[1].id, "{next:?} after {first:?}");
    let rest = store.claim_from(4, sweep, Some(0), 10, T0 + 30, &p).await.unwrap();
    let mut got: Vec<i64> = rest.iter().map(|c| c.id).collect();
    got.sort();
    assert_eq!((got.len(), got[0]), (3, first[0].id), "{rest:?}");
    assert!(store.claim_from(5, sweep, Some(1), 10, T0 + 40, &p).await.unwrap().is_empty(), "no model 1");
}

#[tokio::test]
async fn parts_in_the_earlier_layout_are_committed_for_their_own_attempt_only() {
    // Workers of earlier versions name their part in a folder per shard; a
    // coordinator takes it for the attempt it names, and nothing else.
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 2, 1, 3).await;
    let p = policy();
    let c = store.claim(1, 2, T0, &p).await.unwrap();
    let nested =
        |sweep: i64, shard: i64, attempt: i32, epoch: i64| format!("sweeps/{sweep}/parts/shard-{shard:010}/attempt-{attempt}-epoch-{epoch}.parquet");
    let commit = |c: &jagged_store::Claimed, key: String| {
        let mut out = output(c);
        out.object_key = key;
        Commit { shard: c.id, epoch: c.lease_epoch, worker: 1, out, failed: vec![], next_ring: vec![] }
    };
    for wrong in [
        nested(c[0].sweep_id, c[0].id, c[0].attempt + 1, c[0].lease_epoch),
        nested(c[0].sweep_id, c[1].id, c[0].attempt, c[0].lease_epoch),
        nested(c[0].sweep_id + 1, c[0].id, c[0].attempt, c[0].lease_epoch),
    ] {
        let e = store.complete(commit(&c[0], wrong.clone()), T0 + 10).await.unwrap_err();
        assert!(matches!(e, StoreError::BadKey { .. }), "{wrong}: {e}");
    }
    store.complete(commit(&c[0], nested(c[0].sweep_id, c[0].id, c[0].attempt, c[0].lease_epoch)), T0 + 20).await.unwrap();
    store.complete(commit(&c[1], output(&c[1]).object_key), T0 + 30).await.unwrap();
    let keys: Vec<String> = store.outputs(sweep).await.unwrap().into_iter().map(|o| o.object_key).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("/attempt-")) && keys.iter().any(|k| k.contains("-attempt-")), "{keys:?}");
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
    let e = store
        .complete(Commit { shard: first.id, epoch: first.lease_epoch, worker: 1, out: output(&first), failed: vec![], next_ring: vec![] }, T0 + 6_100)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Stale(id) if id == first.id), "{e}");
    // A key outside the attempt's own part (another sweep's prefix) is refused, and
    // the shard stays leased to its holder.
    let mut escape = output(&second);
    escape.object_key = format!("sweeps/{}/parts/../../other/x.parquet", second.sweep_id);
    let e = store
        .complete(
            Commit { shard: second.id, epoch: second.lease_epoch, worker: 2, out: escape.clone(), failed: vec![], next_ring: vec![] },
            T0 + 6_150,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::BadKey { .. }), "{e}");
    assert_eq!(store.leased_count(sweep).await.unwrap(), 1);
    store
        .complete(
            Commit { shard: second.id, epoch: second.lease_epoch, worker: 2, out: output(&second), failed: vec![], next_ring: vec![] },
            T0 + 6_200,
        )
        .await
        .unwrap();
    // A second commit of the same lease is refused too.
    assert!(matches!(
        store
            .complete(
                Commit { shard: second.id, epoch: second.lease_epoch, worker: 2, out: output(&second), failed: vec![], next_ring: vec![] },
                T0 + 6_300
            )
            .await,
        Err(StoreError::Stale(_))
    ));
    let outs = store.outputs(sweep).await.unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].object_key, output(&second).object_key);
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.done, s.state, s.inferences_done), (1, SweepState::Done, 9));
}

#[tokio::test]
async fn poison_shard_fails_after_max_attempts_with_its_last_error() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 2, 1, 2).await; // two shards, two attempts each
    let p = policy();
    let a = store.claim(1, 1, T0, &p).await.unwrap().remove(0);
    assert_eq!(store.fail(a.id, a.lease_epoch, "boom 1", true, 0.5, T0, &p).await.unwrap(), ShardState::Queued);
    let b = store.claim(1, 2, T0 + 10_000, &p).await.unwrap();
    let a2 = b.iter().find(|c| c.id == a.id).unwrap();
    assert_eq!(store.fail(a2.id, a2.lease_epoch, "boom 2", true, 0.5, T0 + 10_000, &p).await.unwrap(), ShardState::Failed);
    let errs = store.shard_errors(sweep, 10).await.unwrap();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].error, "boom 2");
    assert_eq!(store.sweep(sweep).await.unwrap().state, SweepState::Running, "the other shard is still out");
    let other = b.iter().find(|c| c.id != a.id).unwrap();
    let bad = FailedItem { index: 1, name: "1.png".into(), reason: "corrupt".into() };
    store
        .complete(
            Commit { shard: other.id, epoch: other.lease_epoch, worker: 1, out: output(other), failed: vec![bad], next_ring: vec![] },
            T0 + 10_500,
        )
        .await
        .unwrap();
    let s = store.sweep(sweep).await.unwrap();
    // The failed shard's 9 planned inferences could not run.
    assert_eq!((s.state, s.done, s.failed, s.failed_items, s.inferences_done, s.inferences_failed), (SweepState::Failed, 1, 1, 1, 9, 9));
    // A non-retryable error fails at once.
    let sweep2 = sweep_with(&store, 1, 1, 5).await;
    let c = store.claim(1, 1, T0 + 20_000, &p).await.unwrap().remove(0);
    assert_eq!(store.fail(c.id, c.lease_epoch, "model does not load", false, 0.5, T0 + 20_000, &p).await.unwrap(), ShardState::Failed);
    assert_eq!(store.sweep(sweep2).await.unwrap().state, SweepState::Failed);

    // Retrying: only failed shards, with fresh attempts; the committed one stays.
    let refused = store.retry_failed(sweep, Some(other.id), T0 + 30_000).await.unwrap_err().to_string();
    assert_eq!(refused, format!("shard `{}` of sweep `{sweep}` has not failed: only failed shards are retried", other.id));
    assert_eq!(store.retry_failed(sweep, None, T0 + 30_000).await.unwrap(), vec![a.id]);
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.state, s.done, s.failed, s.inferences_done, s.inferences_failed, s.finished_at), (SweepState::Running, 1, 0, 9, 0, None));
    let again = store.claim(1, 5, T0 + 30_000, &p).await.unwrap();
    let a3 = again.iter().find(|c| c.id == a.id).expect("the failed shard is leased again");
    assert_eq!(a3.attempt, 1, "fresh attempts");
    assert!(a3.lease_epoch > a2.lease_epoch, "a new part key");
    store
        .complete(Commit { shard: a3.id, epoch: a3.lease_epoch, worker: 1, out: output(a3), failed: vec![], next_ring: vec![] }, T0 + 30_100)
        .await
        .unwrap();
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.state, s.done, s.failed, s.inferences_done, s.inferences_failed), (SweepState::Done, 2, 0, 18, 0));
    assert_eq!(store.outputs(sweep).await.unwrap().len(), 2, "the first commit stays");
    let none = store.retry_failed(sweep, None, T0 + 31_000).await.unwrap_err().to_string();
    assert_eq!(none, format!("sweep `{sweep}` has no failed shards"));
    let sweep3 = sweep_with(&store, 1, 1, 5).await;
    store.cancel(sweep3, T0 + 31_000).await.unwrap();
    let cancelled = store.retry_failed(sweep3, None, T0 + 31_000).await.unwrap_err().to_string();
    assert!(cancelled.contains("was cancelled"), "{cancelled}");
}

#[tokio::test]
async fn heartbeat_extends_held_leases_and_reports_lost_ones() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 2, 1, 3).await;
    let p = policy();
    let w = store.register_worker("w", "host", "cpu", T0).await.unwrap();
    let c = store.claim(w, 2, T0, &p).await.unwrap();
    let held: Vec<Held> = c.iter().map(|c| Held { shard: c.id, epoch: c.lease_epoch, busy: 0.25 }).collect();
    let stranger = store.heartbeat(w + 1000, &held, T0 + 900, &p).await.unwrap_err();
    assert!(matches!(stranger, StoreError::NoWorker(id) if id == w + 1000), "a worker id that never registered is refused: {stranger}");
    assert!(store.heartbeat(w, &held, T0 + 900, &p).await.unwrap().is_empty());
    assert_eq!(store.reap(T0 + 1_500, &p, 100).await.unwrap(), 0, "renewed to T0 + 1900");
    store.cancel(sweep, T0 + 1_600).await.unwrap();
    let lost = store.heartbeat(w, &held, T0 + 1_700, &p).await.unwrap();
    assert_eq!(lost.len(), 2, "cancelled shards are reported lost");
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.state, s.cancelled), (SweepState::Cancelled, 2));
    assert!(store.claim(8, 5, T0 + 2_000, &p).await.unwrap().is_empty());
    // Live workers: seen recently and not gone.
    assert_eq!(store.workers_alive(T0 + 1_000).await.unwrap(), 1);
    assert_eq!(store.workers_alive(T0 + 1_800).await.unwrap(), 0, "not seen since");
    store.heartbeat(w, &[], T0 + 2_000, &p).await.unwrap();
    assert_eq!(store.workers_alive(T0 + 1_800).await.unwrap(), 1);
    store.leave_worker(w, T0 + 2_100).await.unwrap();
    assert_eq!(store.workers_alive(T0 + 1_800).await.unwrap(), 0, "a worker that left is not live");
}

#[tokio::test]
async fn group_commit_writes_the_good_ones_and_refuses_each_bad_one_alone() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 6, 1, 3).await; // 6 shards, 9 inferences each
    let p = policy();
    let c = store.claim(1, 6, T0, &p).await.unwrap();
    assert_eq!(c.len(), 6);
    let commit = |k: &jagged_store::Claimed, out: Output, failed: Vec<FailedItem>| Commit {
        shard: k.id,
        epoch: k.lease_epoch,
        worker: 1,
        out,
        failed,
        next_ring: vec![],
    };
    let item = |i: u32| FailedItem { index: i, name: format!("{i}.png"), reason: "bad".into() };
    let mut stale = commit(&c[3], output(&c[3]), vec![]);
    stale.epoch += 1; // an epoch the shard never had
    stale.out.object_key = jagged_domain::keys::part_key(c[3].sweep_id, c[3].id, c[3].attempt, stale.epoch);
    let mut wrong = commit(&c[4], output(&c[4]), vec![]);
    wrong.out.object_key = output(&c[5]).object_key; // another shard's part
                                                     // Shard 1's only image failed: none of its 9 inferences ran.
    let batch = vec![
        commit(&c[0], output(&c[0]), vec![]),
        commit(&c[1], Output { rows: 0, ..output(&c[1]) }, vec![item(1)]),
        commit(&c[2], output(&c[2]), vec![]),
        stale,
        wrong,
        commit(&c[2], output(&c[2]), vec![]), // the same commit twice in one batch
    ];
    let r = store.complete_many(&batch, T0 + 100).await.unwrap();
    assert!(r[0].is_ok() && r[1].is_ok() && r[2].is_ok(), "{r:?}");
    assert!(matches!(r[3], Err(StoreError::Stale(id)) if id == c[3].id), "{:?}", r[3]);
    assert!(matches!(r[4], Err(StoreError::BadKey { shard, .. }) if shard == c[4].id), "{:?}", r[4]);
    assert!(matches!(r[5], Err(StoreError::Stale(id)) if id == c[2].id), "counted once: {:?}", r[5]);
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.done, s.inferences_done, s.inferences_failed, s.failed_items, s.state), (3, 18, 9, 1, SweepState::Running));
    assert_eq!(store.leased_count(sweep).await.unwrap(), 3, "refused shards stay with their holder");
    let outs = store.outputs(sweep).await.unwrap();
    assert_eq!(outs.iter().map(|o| o.shard_id).collect::<Vec<_>>(), vec![c[0].id, c[1].id, c[2].id]);
    let failed = store.failed_items(sweep).await.unwrap();
    assert_eq!((failed.len(), failed[0].shard_id, failed[0].item.index), (1, c[1].id, 1));
    // The rest, committed properly in a second batch, finish the sweep once.
    let rest: Vec<_> = c[3..].iter().map(|k| commit(k, output(k), vec![])).collect();
    assert!(store.complete_many(&rest, T0 + 200).await.unwrap().iter().all(Result::is_ok));
    let s = store.sweep(sweep).await.unwrap();
    assert_eq!((s.done, s.inferences_done, s.inferences_failed, s.state), (6, 45, 9, SweepState::Done));
    assert_eq!(store.outputs(sweep).await.unwrap().len(), 6);
}

#[tokio::test]
async fn claims_from_one_sweep_prefer_the_given_model() {
    let (_pg, store) = store().await;
    let mut s = resolved(4, CROP, 2, 3); // 2 shards per model
    let mut m = s.models[0].clone();
    m.key = "blobs/sha256/other".into();
    s.models.push(m);
    s.spec.models.push(s.spec.models[0].clone());
    let a = store.insert_sweep("", &s, &plan(&s)).await.unwrap();
    let b = sweep_with(&store, 2, 1, 3).await;
    let p = policy();
    let got = store.claim_from(1, a, Some(1), 5, T0, &p).await.unwrap();
    assert_eq!(got.iter().map(|c| (c.sweep_id, c.model_idx)).collect::<Vec<_>>(), vec![(a, 1), (a, 1)]);
    assert!(store.claim_from(1, a, Some(1), 5, T0, &p).await.unwrap().is_empty(), "model 1 has no more queued");
    let any = store.claim_from(2, a, None, 1, T0, &p).await.unwrap();
    assert_eq!((any[0].model_idx, any[0].image_lo, any[0].inferences), (0, 0, 18));
    let other = store.claim_from(3, b, None, 5, T0, &p).await.unwrap();
    assert!(other.iter().all(|c| c.sweep_id == b) && other.len() == 2);
    assert_eq!(store.running_sweeps().await.unwrap(), vec![RunningSweep { id: a, priority: 0 }, RunningSweep { id: b, priority: 0 }]);
}
