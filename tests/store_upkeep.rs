//! The store beyond the queue: stored formats and migrations, device time,
//! counters under held snapshots, and the database's upkeep.

use crate::store::{output, policy, sweep_with, T0};
use jagged_domain::cost::Outcome;
use jagged_domain::lease::ShardState;
use jagged_domain::status::SweepState;
use jagged_domain::task::FailedItem;
use jagged_store::{Commit, Held, Output, StoreError};
use jagged_testkit::store;

/// A sweep's resolved form is stored with its format: rows of an older format
/// are read, rows of a newer one are refused with a message naming the sweep,
/// both formats and the fix.
#[tokio::test]
async fn stored_sweeps_carry_their_format_and_newer_ones_are_refused() {
    let (pg, store) = store().await;
    let db = crate::util::db(&pg.url()).await;
    let id = sweep_with(&store, 2, 1, 3).await;
    let format: i32 = sqlx::query_scalar("select resolved_format from sweeps where id = $1").bind(id).fetch_one(&db).await.unwrap();
    assert_eq!(format, jagged_domain::spec::RESOLVED_FORMAT as i32);
    // A row written before structures were recorded (format 1) reads with none.
    sqlx::query("update sweeps set resolved_format = 1, resolved = resolved #- '{models,0,structure}' where id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let old = store.resolved(id).await.unwrap();
    assert_eq!((old.models[0].structure, old.images.len()), (None, 2));
    sqlx::query("update sweeps set resolved_format = 99 where id = $1").bind(id).execute(&db).await.unwrap();
    let e = store.resolved(id).await.unwrap_err();
    assert!(matches!(e, StoreError::Format { format: 99, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("sweep `{id}`")) && msg.contains("format 99") && msg.contains("upgrade jagged"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn coordinators_started_together_on_a_fresh_database_both_come_up_and_a_newer_schema_is_refused() {
    let pg = jagged_local::LocalPostgres::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Two at the same instant: one migrates, the other waits on the lock and
    // finds the work done.
    let mut a = jagged_testkit::coordinator(&pg.url(), dir, "a");
    let mut b = jagged_testkit::coordinator(&pg.url(), dir, "b");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(dir.join("a.addr").exists() && dir.join("b.addr").exists()) {
        let logs = || format!("{}\n{}", std::fs::read_to_string(dir.join("a.log")).unwrap(), std::fs::read_to_string(dir.join("b.log")).unwrap());
        assert!(!a.exited() && !b.exited(), "a coordinator exited:\n{}", logs());
        assert!(std::time::Instant::now() < deadline, "the coordinators did not both come up:\n{}", logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let db = crate::util::db(&pg.url()).await;
    let applied: Vec<i64> = sqlx::query_scalar("select version from _sqlx_migrations order by version").fetch_all(&db).await.unwrap();
    let mut known: Vec<i64> = jagged_store::MIGRATOR.iter().map(|m| m.version).collect(); // up and down
    known.dedup();
    assert_eq!(applied, known, "every migration applied once");
    a.terminate(std::time::Duration::from_secs(10));
    b.terminate(std::time::Duration::from_secs(10));

    // A database a newer jagged migrated: refused, saying so.
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) values (999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    let mut c = jagged_testkit::coordinator(&pg.url(), dir, "c");
    let st = c.wait_exit(std::time::Duration::from_secs(30)).expect("the coordinator did not refuse the newer schema");
    let log = std::fs::read_to_string(dir.join("c.log")).unwrap();
    assert!(!st.success(), "{log}");
    let last = *known.last().unwrap();
    assert!(
        log.contains(&format!(
            "was migrated by a newer jagged (its schema has migration 999; this one knows migrations 1 to {last}): upgrade jagged"
        )),
        "{log}"
    );
}

#[tokio::test]
async fn every_attempt_is_charged_its_device_time_and_lost_ones_apart() {
    let (_pg, store) = store().await;
    let sweep = sweep_with(&store, 3, 1, 5).await; // 3 shards, 9 inferences each
    let p = policy();
    let gpu = store.register_worker("gpu-1", "h", "cuda:0", T0).await.unwrap();
    let cpu = store.register_worker("cpu-1", "h", "cpu", T0).await.unwrap();
    let c = store.claim(gpu, 3, T0, &p).await.unwrap();
    let busy = [1.5, 2.0, 0.5];
    let held: Vec<Held> = c.iter().zip(busy).map(|(c, b)| Held { shard: c.id, epoch: c.lease_epoch, busy: b }).collect();
    assert!(store.heartbeat(gpu, &held, T0 + 100, &p).await.unwrap().is_empty());
    // A failure reports its own busy time; a hand-back that says less keeps what the heartbeat said.
    assert_eq!(store.fail(c[0].id, c[0].lease_epoch, "boom", true, 1.75, T0 + 200, &p).await.unwrap(), ShardState::Queued);
    assert_eq!(store.hand_back(c[1].id, c[1].lease_epoch, 0.0, T0 + 200, &p).await.unwrap(), ShardState::Queued);
    // The third one's worker vanishes: charged what its last heartbeat said.
    let expiry = T0 + 100 + p.lease_ms + 1;
    assert_eq!(store.reap(expiry, &p, 10).await.unwrap(), 1);
    let later = expiry + 600_000;
    let again = store.claim(cpu, 3, later, &p).await.unwrap();
    assert_eq!(again.len(), 3);
    for a in &again {
        store
            .complete(Commit { shard: a.id, epoch: a.lease_epoch, worker: cpu, out: output(a), failed: vec![], next_ring: vec![] }, later + 10)
            .await
            .unwrap();
    }
    let spent = store.spent(sweep).await.unwrap();
    let find = |worker: i64, outcome: Outcome| spent.iter().find(|l| l.worker_id == worker && l.outcome == outcome).cloned().unwrap();
    let failed = find(gpu, Outcome::Failed);
    assert_eq!((failed.attempts, failed.busy_seconds, failed.device.as_str(), failed.inferences), (1, 1.75, "cuda:0", 0));
    assert!((failed.wall_seconds - 0.2).abs() < 1e-9, "leased at T0, failed at T0 + 200 ms: {}", failed.wall_seconds);
    assert_eq!(find(gpu, Outcome::HandedBack).busy_seconds, 2.0);
    let abandoned = find(gpu, Outcome::Abandoned);
    assert_eq!(abandoned.busy_seconds, 0.5);
    assert!((abandoned.wall_seconds - (expiry - T0) as f64 / 1000.0).abs() < 1e-9);
    let done = find(cpu, Outcome::Done);
    assert_eq!((done.attempts, done.inferences, done.worker.as_str()), (3, 27, "cpu-1"));
    assert!((done.busy_seconds - 0.15).abs() < 1e-9);
    assert_eq!(spent.len(), 4);
    // Priced per device-hour: 4.25 GPU-seconds at 3.6/h and 0.15 CPU-seconds at 0.36/h.
    let prices: jagged_domain::cost::Prices = [("cuda".to_string(), 3.6), ("cpu".to_string(), 0.36)].into();
    let t = jagged_domain::cost::Totals::of(&spent, &prices);
    assert!((t.busy_done - 0.15).abs() < 1e-9 && (t.busy_lost - 4.25).abs() < 1e-9, "{t:?}");
    assert!((t.cost.unwrap() - (4.25 * 0.001 + 0.15 * 0.0001)).abs() < 1e-12, "{t:?}");
    // Prices given at submit are kept with the sweep.
    assert!(store.prices(sweep).await.unwrap().is_empty());
    store.set_prices(sweep, &prices).await.unwrap();
    assert_eq!(store.prices(sweep).await.unwrap(), prices);
}

/// Two coordinators' stores commit, fail and hand back shards of one sweep at
/// once while a REPEATABLE READ transaction elsewhere holds its snapshot: the
/// counters end exact (checked against the shards and outputs themselves), the
/// sweep ends once, each change leaves one live tally, and the old snapshot
/// still reads the counters it started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_stay_exact_with_two_coordinators_committing_under_a_held_snapshot() {
    use sqlx::{Connection, Executor};
    let (pg, a) = store().await;
    let db = crate::util::db(&pg.url()).await;
    let b = jagged_store::Store::connect(&pg.url(), 8).await.unwrap();
    let sweep = sweep_with(&a, 120, 1, 1).await; // 120 shards of 9 inferences, one attempt each
    let mut held = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    held.execute("begin isolation level repeatable read").await.unwrap();
    let before: i32 = sqlx::query_scalar("select shards_done from sweep_tallies where sweep_id = $1").bind(sweep).fetch_one(&mut held).await.unwrap();
    assert_eq!(before, 0);
    let p = policy();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                let c = store.claim(w, 3, T0, &p).await.unwrap();
                if c.is_empty() {
                    return n;
                }
                let mut commits = Vec::new();
                for k in c {
                    n += 1;
                    match k.id % 10 {
                        // Not retryable: failed for good at once.
                        0 => assert_eq!(store.fail(k.id, k.lease_epoch, "boom", false, 0.1, T0, &p).await.unwrap(), ShardState::Failed),
                        // Handed back: queued again, claimed by someone later.
                        5 if k.attempt == 1 => {
                            store.hand_back(k.id, k.lease_epoch, 0.1, T0, &p).await.unwrap();
                            n -= 1;
                        }
                        // One failed item: 9 rows planned, 5 written.
                        3 => commits.push(Commit {
                            shard: k.id,
                            epoch: k.lease_epoch,
                            worker: w,
                            out: Output { rows: 5, ..output(&k) },
                            failed: vec![FailedItem { index: 0, name: "0.png".into(), reason: "bad".into() }],
                            next_ring: vec![],
                        }),
                        _ => {
                            commits.push(Commit { shard: k.id, epoch: k.lease_epoch, worker: w, out: output(&k), failed: vec![], next_ring: vec![] })
                        }
                    }
                }
                for r in store.complete_many(&commits, T0 + 1).await.unwrap() {
                    r.unwrap();
                }
            }
        }));
    }
    let mut handled = 0;
    for t in tasks {
        handled += t.await.unwrap();
    }
    assert_eq!(handled, 120, "every shard ended once");
    let s = b.sweep(sweep).await.unwrap();
    // Straight from the shards and outputs.
    let (done, failed): (i64, i64) =
        sqlx::query_as("select count(*) filter (where state = 'done'), count(*) filter (where state = 'failed') from shards where sweep_id = $1")
            .bind(sweep)
            .fetch_one(&db)
            .await
            .unwrap();
    let (rows, items): (i64, i64) =
        sqlx::query_as("select sum(rows)::bigint, (select count(*) from failed_items where sweep_id = $1) from outputs where sweep_id = $1")
            .bind(sweep)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((done, failed, rows, items), (108, 12, 12 * 5 + 96 * 9, 12));
    assert_eq!(
        (s.total, s.done as i64, s.failed as i64, s.cancelled, s.inferences_total, s.inferences_done, s.inferences_failed, s.failed_items),
        (120, done, failed, 0, 1080, rows, 12 * 4 + 12 * 9, items)
    );
    assert_eq!(s.state, SweepState::Failed);
    assert!(s.finished_at.is_some());
    let (live, latest): (i64, i64) =
        sqlx::query_as("select count(*), max(seq) from sweep_tallies where sweep_id = $1").bind(sweep).fetch_one(&db).await.unwrap();
    assert_eq!(live, 1, "one live tally");
    assert!((12..=120).contains(&latest), "one tally per change (per commit batch or failure): {latest}");
    let still: i32 = sqlx::query_scalar("select shards_done from sweep_tallies where sweep_id = $1").bind(sweep).fetch_one(&mut held).await.unwrap();
    assert_eq!(still, 0, "the held snapshot reads the tally it started with");
    held.execute("commit").await.unwrap();
}

/// Under a held snapshot the dead tallies of a busy sweep pile up while the
/// table's statistics count one live row, and the planner then reads a
/// sweep's latest tally by scanning the whole table, slower with every commit:
/// `latest_tally()` (what status, listing and every tally change use) keeps
/// to the primary key, and the change after it still counts exactly.
#[tokio::test]
async fn the_latest_tally_is_read_by_index_however_many_dead_tallies_a_snapshot_keeps() {
    use sqlx::{Connection, Executor};
    let (pg, store) = store().await;
    let db = crate::util::db(&pg.url()).await;
    let sweep = sweep_with(&store, 4, 1, 1).await;
    sweep_with(&store, 2, 1, 1).await; // a second sweep's tally: more than one live row
    let mut held = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    held.execute("begin isolation level repeatable read").await.unwrap();
    let _: i64 = sqlx::query_scalar("select count(*) from sweep_tallies").fetch_one(&mut held).await.unwrap();
    // 20,000 changes that add nothing, each appending the next tally and
    // deleting the one before, as tally.sql does; then fresh statistics.
    sqlx::query(
        "do $$ begin for i in 1..20000 loop
             insert into sweep_tallies select sweep_id, seq + 1, total_shards, shards_done, shards_failed, shards_cancelled,
                 inferences_total, inferences_done, inferences_failed, failed_items
             from sweep_tallies where sweep_id = $1 order by seq desc limit 1;
             delete from sweep_tallies where sweep_id = $1 and seq = i - 1;
         end loop; end $$"
            .replace("$1", &sweep.to_string())
            .as_str(),
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("analyze sweep_tallies").execute(&db).await.unwrap();
    // Buffers one statement touches, as EXPLAIN (ANALYZE, BUFFERS) counts them
    // (a function's own statements included), on a connection that ran it once.
    let buffers = |sql: String| {
        let url = pg.url();
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            c.execute(sql.as_str()).await.unwrap();
            let plan: serde_json::Value =
                sqlx::query_scalar(&format!("explain (analyze, buffers, format json) {sql}")).fetch_one(&mut c).await.unwrap();
            let p = &plan[0]["Plan"];
            p["Shared Hit Blocks"].as_i64().unwrap() + p["Shared Read Blocks"].as_i64().unwrap()
        }
    };
    let pages: i32 = sqlx::query_scalar("select relpages from pg_class where relname = 'sweep_tallies'").fetch_one(&db).await.unwrap();
    let plain = buffers(format!("select * from sweep_tallies where sweep_id = {sweep} order by seq desc limit 1")).await;
    let by_function = buffers(format!("select * from latest_tally({sweep})")).await;
    assert!(plain >= pages as i64 / 2, "the plain query reads the table ({plain} buffers of {pages} pages): the case this guards against");
    assert!(by_function * 4 <= plain, "latest_tally() reads the primary key: {by_function} buffers against {plain}");
    // The next change counts on top of the latest tally and leaves one live.
    let s = store.cancel(sweep, T0).await.unwrap();
    assert_eq!((s.total, s.cancelled, s.state), (4, 4, SweepState::Cancelled));
    assert_eq!(store.sweep(sweep).await.unwrap().cancelled, 4);
    let (live, latest): (i64, i64) =
        sqlx::query_as("select count(*), max(seq) from sweep_tallies where sweep_id = $1").bind(sweep).fetch_one(&db).await.unwrap();
    assert_eq!((live, latest), (1, 20001));
    held.execute("commit").await.unwrap();
}

/// What an operator asks of the database itself: vacuums, a checkpoint, the
/// queue's tables' sizes and tuples, connections, and a snapshot held open.
#[tokio::test]
async fn the_database_upkeep_reports_on_the_queue_tables() {
    let (pg, store) = store().await;
    sweep_with(&store, 5, 1, 1).await; // 5 shards
    store.vacuum(true).await.unwrap();
    store.vacuum(false).await.unwrap();
    store.checkpoint().await.unwrap();
    let sizes = store.table_sizes().await.unwrap();
    let of = |name: &str| sizes.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no size of {name}: {sizes:?}"));
    assert_eq!((of("shards").rows, of("sweeps").rows, of("outputs").rows), (5, 1, 0));
    assert!(of("shards").bytes > 0);
    let tuples: Vec<String> = store.tuples().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tuples, ["outputs", "shards", "sweep_tallies", "sweeps"]);
    assert!(store.connections().await.unwrap() >= 1);
    let held = jagged_store::Store::hold_snapshot(&pg.url()).await.unwrap();
    assert_eq!(held.outputs, 0);
    held.release().await.unwrap();
}
