//! Workers on shared clusters stop, are preempted and vanish all the time.
//! A stopping worker finishes its shard within its grace or hands it back; a
//! worker kept for one sweep or told to end when idle exits 0 by itself; and a
//! shard whose workers keep vanishing is failed, saying so, while lost leases
//! never count as failures.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{dataset, jagged_bin, ort, until};
use std::path::Path;
use std::time::{Duration, Instant};

/// Two shards of 16 images, each long enough (~10,000 inferences) to be
/// caught mid-run.
fn inputs(dir: &Path) {
    jagged_testkit::tiny_side(dir, 64);
    dataset(&dir.join("data"), 32, 4, &[]);
    std::fs::write(dir.join("spec.toml"), jagged_testkit::crop_spec("preemption", 12, 16, 16)).unwrap();
}

/// A shard's row, as the coordinator keeps it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Shard {
    pub id: i64,
    pub state: String,
    pub failures: i32,
    pub lost: i32,
    pub last_error: Option<String>,
    pub worker: Option<String>,
}

pub(crate) async fn shards(pg: &str, sweep: i64) -> Vec<Shard> {
    let db = crate::util::db(pg).await;
    sqlx::query_as(
        "select s.id, s.state, s.failures, s.lost, s.last_error, w.name as worker
         from shards s left join workers w on w.id = s.worker_id where s.sweep_id = $1 order by s.id",
    )
    .bind(sweep)
    .fetch_all(&db)
    .await
    .unwrap()
}

/// Waits until some worker holds a shard of `sweep`; returns (shard, worker name).
fn leased(rt: &tokio::runtime::Runtime, pg: &str, sweep: i64) -> (i64, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = rt.block_on(shards(pg, sweep)).into_iter().find(|s| s.state == "leased") {
            return (s.id, s.worker.unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "no shard of sweep {sweep} was leased");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn log(dir: &Path, i: usize) -> String {
    std::fs::read_to_string(dir.join(format!("run/logs/worker-{i}.log"))).unwrap_or_default()
}

/// Waits until worker `i`'s log says `what`.
fn until_logged(dir: &Path, i: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log(dir, i).contains(what) {
        assert!(Instant::now() < deadline, "worker-{i} never logged {what:?}:\n{}", log(dir, i));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A cluster with no worker yet over the inputs, and what the tests use of it.
struct Setup {
    tmp: tempfile::TempDir,
    c: LocalCluster,
    rt: tokio::runtime::Runtime,
    url: String,
    pg: String,
    objects: std::sync::Arc<dyn object_store::ObjectStore>,
}

impl Setup {
    fn new() -> Setup {
        ort();
        let tmp = tempfile::tempdir().unwrap();
        inputs(tmp.path());
        let opts = ClusterOptions { dir: tmp.path().join("run"), workers: 0, lease_ms: 1_500, heartbeat_ms: 300, ..Default::default() };
        let c = LocalCluster::start(opts).unwrap();
        let (url, pg) = (c.url.clone(), c.postgres.url());
        let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
        Setup { tmp, c, rt: tokio::runtime::Runtime::new().unwrap(), url, pg, objects }
    }

    /// Submits the spec (anew each time).
    fn submit(&self) -> i64 {
        let again = Overrides { again: true, ..Default::default() };
        self.rt.block_on(jagged_testkit::submit(&self.url, &self.tmp.path().join("spec.toml"), self.objects.as_ref(), &again)).unwrap()
    }
}

#[test]
fn stopping_workers_finish_in_their_grace_or_hand_back_and_idle_ones_exit_zero() {
    let mut s = Setup::new();
    let (url, pg, dir) = (s.url.clone(), s.pg.clone(), s.tmp.path().to_path_buf());
    let (rt, dir) = (&s.rt, dir.as_path());
    let a = s.submit();

    // No grace: told to stop mid-shard, the worker hands it back at once and
    // exits 0; the shard is queued again as a lost lease, not a failure.
    s.c.add_worker_with(0, &["--stop-grace", "0s"]).unwrap();
    let (shard, _) = leased(rt, &pg, a);
    until_logged(dir, 0, "running shard");
    s.c.workers[0].signal("TERM");
    let st = s.c.workers[0].wait_exit(Duration::from_secs(20)).expect("worker-0 did not exit after SIGTERM");
    assert!(st.success(), "{st:?}\n{}", log(dir, 0));
    assert!(log(dir, 0).contains("shard handed back unfinished"), "{}", log(dir, 0));
    let sh = rt.block_on(shards(&pg, a)).into_iter().find(|s| s.id == shard).unwrap();
    assert_eq!((sh.state.as_str(), sh.failures, sh.lost), ("queued", 0, 1), "{sh:?}");
    assert_eq!(sh.last_error.as_deref(), Some("handed back by a stopping worker (lost lease 1 of 20)"));

    // Within its grace (SIGUSR1, as Slurm sends before a time limit): the shard
    // in hand is finished and committed, then the worker exits 0.
    s.c.add_worker(1).unwrap();
    let (shard, _) = leased(rt, &pg, a);
    s.c.workers[1].signal("USR1");
    let st = s.c.workers[1].wait_exit(Duration::from_secs(60)).expect("worker-1 did not exit after SIGUSR1");
    assert!(st.success(), "{st:?}\n{}", log(dir, 1));
    let sh = rt.block_on(shards(&pg, a)).into_iter().find(|s| s.id == shard).unwrap();
    assert_eq!(sh.state, "done", "{sh:?}\n{}", log(dir, 1));

    // Kept for one sweep: it never takes another sweep's work, and exits 0
    // once its sweep is over.
    let b = s.submit();
    s.c.add_worker_with(2, &["--sweep", &a.to_string()]).unwrap();
    let st = s.c.workers[2].wait_exit(Duration::from_secs(60)).expect("worker-2 did not exit when its sweep was over");
    assert!(st.success() && log(dir, 2).contains("the sweep is over; exiting"), "{st:?}\n{}", log(dir, 2));
    let done = rt.block_on(until(&url, a, "status", |_| true));
    assert_eq!((done.state, done.done, done.failed, done.inferences_done), (SweepState::Done, 2, 0, done.inferences_total), "{done:?}");
    assert!(rt.block_on(shards(&pg, b)).iter().all(|s| s.state == "queued"), "worker-2 took another sweep's shard");

    // Told to end when idle: it runs what there is, then exits 0 by itself.
    s.c.add_worker_with(3, &["--exit-when-idle", "1s"]).unwrap();
    let st = s.c.workers[3].wait_exit(Duration::from_secs(60)).expect("worker-3 did not exit when idle");
    assert!(st.success() && log(dir, 3).contains("no work left; exiting"), "{st:?}\n{}", log(dir, 3));
    let done = rt.block_on(until(&url, b, "status", |_| true));
    assert_eq!((done.state, done.done), (SweepState::Done, 2), "{done:?}");

    // A sweep that does not exist is an error, not a quiet exit.
    s.c.add_worker_with(4, &["--sweep", "999"]).unwrap();
    let st = s.c.workers[4].wait_exit(Duration::from_secs(30)).expect("worker-4 did not exit");
    assert!(!st.success() && log(dir, 4).contains("999"), "{st:?}\n{}", log(dir, 4));
    s.c.stop();
}

#[test]
fn a_shard_whose_workers_keep_vanishing_fails_saying_so_and_the_rest_completes() {
    let mut s = Setup::new();
    let (url, pg) = (s.url.clone(), s.pg.clone());
    let rt = &s.rt;
    let id = s.submit();

    // Whoever takes the first shard is killed (as if it ran out of memory),
    // and a fresh worker registers in its place, until the shard fails.
    s.c.add_worker(0).unwrap();
    let (target, _) = leased(rt, &pg, id);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sh = rt.block_on(shards(&pg, id)).into_iter().find(|s| s.id == target).unwrap();
        match sh.state.as_str() {
            "failed" => break,
            // Killed only while it holds nothing else (the previous shard's commit
            // may still be in flight), so no other shard loses its lease.
            "leased" if rt.block_on(shards(&pg, id)).iter().filter(|s| s.state == "leased").count() == 1 => {
                s.c.workers[0].kill9();
                kills += 1;
                s.c.add_worker(0).unwrap();
                // Wait for the lease to end before looking again.
                while rt.block_on(shards(&pg, id)).into_iter().any(|s| s.id == target && s.state == "leased") {
                    assert!(Instant::now() < deadline, "the killed worker's lease never expired");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
        assert!(Instant::now() < deadline, "the shard never failed: {sh:?}");
    }
    let st = rt.block_on(until(&url, id, "the sweep to end", |s| s.state != SweepState::Running));
    assert_eq!(kills, 3, "three different workers in a row (the coordinator's default)");
    assert_eq!((st.state, st.done, st.failed), (SweepState::Failed, 1, 1), "{st:?}");
    let sh = rt.block_on(shards(&pg, id)).into_iter().find(|s| s.id == target).unwrap();
    assert_eq!((sh.failures, sh.lost), (0, 3), "{sh:?}");
    let e = sh.last_error.unwrap();
    assert!(e.starts_with("lease lost on 3 different workers in a row (workers ") && e.contains("may be killing them (out of memory?)"), "{e}");
    let out = std::process::Command::new(jagged_bin()).args(["sweep", "status", &id.to_string(), "--coordinator", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("$ jagged sweep status {id}\n{text}");
    assert!(text.contains("[failed]") && text.contains("lease lost on 3 different workers in a row"), "{text}");
    s.c.stop();
}

#[test]
fn a_worker_leasing_ahead_keeps_its_waiting_shard_and_hands_it_back_unstarted_when_stopped() {
    let mut s = Setup::new();
    let (url, pg, dir) = (s.url.clone(), s.pg.clone(), s.tmp.path().to_path_buf());
    let (rt, dir) = (&s.rt, dir.as_path());
    let a = s.submit();

    // One lease call takes both shards: one runs, one waits in the worker.
    s.c.add_worker_with(0, &["--prefetch", "1"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let sh = rt.block_on(shards(&pg, a));
        assert!(sh.iter().all(|x| x.state != "done"), "a shard finished before the worker was seen holding both: {sh:?}");
        if sh.iter().all(|x| x.state == "leased") {
            break sh;
        }
        assert!(Instant::now() < deadline, "the worker never leased ahead: {sh:?}");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(held.iter().all(|x| x.worker.as_deref() == Some("worker-0")), "{held:?}");

    // Told to stop once one shard runs (not while both still wait for the
    // model to load): the running shard finishes within the grace; the
    // waiting one goes back at once, never started, as a lost lease.
    while !log(dir, 0).contains("running shard") {
        assert!(Instant::now() < deadline, "the worker never started a shard:\n{}", log(dir, 0));
        std::thread::sleep(Duration::from_millis(2));
    }
    s.c.workers[0].signal("USR1");
    let st = s.c.workers[0].wait_exit(Duration::from_secs(60)).expect("worker-0 did not exit after SIGUSR1");
    assert!(st.success(), "{st:?}\n{}", log(dir, 0));
    let after = rt.block_on(shards(&pg, a));
    let done: Vec<&Shard> = after.iter().filter(|x| x.state == "done").collect();
    let back: Vec<&Shard> = after.iter().filter(|x| x.state == "queued").collect();
    assert_eq!((done.len(), back.len()), (1, 1), "{after:?}\n{}", log(dir, 0));
    assert_eq!((back[0].failures, back[0].lost), (0, 1), "{after:?}");
    assert_eq!(back[0].last_error.as_deref(), Some("handed back by a stopping worker (lost lease 1 of 20)"));
    let text = log(dir, 0);
    assert_eq!(text.matches("running shard").count(), 1, "the waiting shard was started:\n{text}");
    assert!(text.contains("shard handed back unfinished"), "{text}");

    // While a shard waits behind one that takes longer than a lease (1.5 s),
    // heartbeats keep its lease: no lease of this sweep is lost.
    let b = s.submit();
    s.c.add_worker_with(1, &["--prefetch", "1", "--sweep", &b.to_string()]).unwrap();
    let st = s.c.workers[1].wait_exit(Duration::from_secs(90)).expect("worker-1 did not exit when its sweep was over");
    assert!(st.success(), "{st:?}\n{}", log(dir, 1));
    let sb = rt.block_on(shards(&pg, b));
    assert!(sb.iter().all(|x| x.state == "done" && x.lost == 0 && x.failures == 0), "{sb:?}\n{}", log(dir, 1));
    let done = rt.block_on(until(&url, b, "status", |_| true));
    assert_eq!((done.state, done.done, done.inferences_done), (SweepState::Done, 2, done.inferences_total), "{done:?}");

    // The handed-back shard of the first sweep completes on a plain worker.
    s.c.add_worker_with(2, &["--sweep", &a.to_string()]).unwrap();
    let done = rt.block_on(until(&url, a, "the sweep to end", |s| s.state != SweepState::Running));
    assert_eq!((done.state, done.done, done.failed, done.inferences_done), (SweepState::Done, 2, 0, done.inferences_total), "{done:?}");
    s.c.stop();
}
