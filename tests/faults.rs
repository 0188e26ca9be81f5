//! Damage done to a running sweep: workers killed again and again, the
//! coordinator killed and restarted, PostgreSQL restarted, a worker frozen past
//! its lease, a worker told to stop. After each, the sweep must finish with the
//! report of an undisturbed run of the same spec, byte for byte, with one
//! committed output per shard, no row lost or counted twice, no shard left
//! leased, and `sweep status` consistent throughout.

use jagged_client::{Admin, ClientConfig, Overrides};
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{dataset, jagged_bin, ort, until};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SPEC: &str = r#"
name = "faults"
[dataset]
path = "data"
[[models]]
path = "models/tiny96.onnx"
[[families]]
kind = "crop"
max_shift = 8
[[families]]
kind = "rotate"
from = -12.0
to = 12.0
step = 2.0
[shard]
images = 1
max_attempts = 1
[run]
batch_size = 16
"#;

const IMAGES: u32 = 36;

/// Polls `cond` every 20 ms until it holds (or panics after two minutes).
fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `frac` of the shards are done and checks the sweep is still
/// running, so the damage lands mid-sweep.
fn mid(rt: &tokio::runtime::Runtime, url: &str, id: i64, total: u32, frac: f64) {
    let s = rt.block_on(until(url, id, "progress", |s| s.done >= (total as f64 * frac) as u32));
    assert_eq!(s.state, SweepState::Running, "the sweep finished before the damage: make it longer");
}

/// Watches `sweep status` while damage is done, recording any inconsistency:
/// shard states must add up to the total, `done` must never go back, and the
/// inference count must stay within the total.
/// Inconsistencies seen, and (status polls, fastest pace shown) once the sweep is done.
type Watch = (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<(usize, f64)>);

fn watch(rt: &tokio::runtime::Runtime, url: String, id: i64) -> Watch {
    let errors: Arc<Mutex<Vec<String>>> = Default::default();
    let errs = errors.clone();
    let handle = rt.spawn(async move {
        let (mut last_done, mut seen, mut fastest) = (0u32, 0usize, 0f64);
        loop {
            if let Ok(mut c) = Admin::connect(&ClientConfig::new(url.clone())).await {
                if let Ok(s) = c.status(id).await {
                    seen += 1;
                    let sum = s.queued + s.leased + s.done + s.failed + s.cancelled;
                    let mut e = errs.lock().unwrap();
                    if sum != s.total {
                        e.push(format!("states add up to {sum}, not {}: {s:?}", s.total));
                    }
                    if s.done < last_done {
                        e.push(format!("done went back from {last_done} to {}", s.done));
                    }
                    if s.inferences_done > s.inferences_total || s.failed > 0 {
                        e.push(format!("impossible counts: {s:?}"));
                    }
                    if s.state == SweepState::Running && s.inferences_per_sec > 0.0 && (s.eta_secs.is_nan() || s.eta_secs < 0.0) {
                        e.push(format!("a pace without an ETA: {s:?}"));
                    }
                    fastest = fastest.max(s.inferences_per_sec);
                    last_done = s.done;
                    if s.state == SweepState::Done {
                        if (s.inferences_per_sec, s.eta_secs) != (0.0, 0.0) {
                            e.push(format!("a done sweep with a pace: {s:?}"));
                        }
                        return (seen, fastest);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    (errors, handle)
}

/// Waits for the sweep and checks its end state; returns the report's CSV.
pub(crate) async fn finish(cluster_url: &str, pg: &str, objects: &dyn object_store::ObjectStore, id: i64) -> String {
    let st = until(cluster_url, id, "the sweep to finish", |s| s.state == SweepState::Done).await;
    assert_eq!((st.done, st.failed, st.leased, st.queued), (st.total, 0, 0, 0), "{st:?}");
    assert_eq!(st.inferences_done, st.inferences_total);
    let store = jagged_store::Store::connect(pg, 2).await.unwrap();
    assert_eq!(store.leased_count(id).await.unwrap(), 0, "no shard stays leased");
    let outputs = store.outputs(id).await.unwrap();
    assert_eq!(outputs.len(), st.total as usize, "one committed output per shard");
    let mut seen = HashSet::new();
    let mut rows = 0i64;
    for o in &outputs {
        for r in jagged_artifacts::decode(jagged_artifacts::get(objects, &o.object_key).await.unwrap()).unwrap() {
            assert!(seen.insert((r.model.clone(), r.family_index, r.image_index, r.point)), "row counted twice: {r:?}");
            rows += 1;
        }
    }
    assert_eq!(rows, st.inferences_total, "every row once");
    jagged_report::build(&store, objects, id).await.unwrap().csv()
}

/// Shards of `sweep` leased by the worker named `name`.
async fn held_by(pg: &str, sweep: i64, name: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from shards s join workers w on w.id = s.worker_id where s.sweep_id = $1 and s.state = 'leased' and w.name = $2",
    )
    .bind(sweep)
    .bind(name)
    .fetch_one(&crate::util::db(pg).await)
    .await
    .unwrap()
}

/// Writes the model, images and spec of the fault sweeps into `dir`.
pub(crate) fn workload(dir: &std::path::Path) {
    jagged_testkit::tiny_side(dir, 96);
    dataset(&dir.join("data"), IMAGES, 10, &[]);
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
}

/// The object store on a real S3 server (SeaweedFS on loopback) stopped for
/// seconds mid-sweep: requests are retried through the outage, and the sweep
/// ends with the undisturbed run's report.
#[test]
fn sweep_on_s3_survives_an_outage_of_the_server() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    workload(dir);
    let mut s3 = jagged_testkit::S3Server::start(&dir.join("s3"));
    let env = s3.env();
    let url_s3 = "s3://jagged/sweeps-under-test".to_string();
    let opts =
        ClusterOptions { dir: dir.join("run"), workers: 2, lease_ms: 5_000, store: Some(url_s3.clone()), env: env.clone(), ..Default::default() };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, pg) = (cluster.url.clone(), cluster.postgres.url());
    let objects = jagged_artifacts::open_store_with(&url_s3, &env).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let submit = || rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();
    let reference_id = submit();
    let reference = rt.block_on(finish(&url, &pg, objects.as_ref(), reference_id));
    let total = rt.block_on(until(&url, reference_id, "status", |_| true)).total;
    let id = submit();
    let (errors, watcher) = watch(&rt, url.clone(), id);
    mid(&rt, &url, id, total, 0.3);
    let logs: Vec<_> = (0..2).map(|i| dir.join(format!("run/logs/worker-{i}.log"))).collect();
    let from: Vec<usize> = logs.iter().map(|l| std::fs::metadata(l).map(|m| m.len() as usize).unwrap_or(0)).collect();
    s3.pause();
    // The outage lasts until a worker has met it and is retrying.
    poll("a worker retrying through the outage", || {
        logs.iter().zip(&from).any(|(l, &f)| std::fs::read_to_string(l).is_ok_and(|t| t.get(f..).is_some_and(|t| t.contains("backing off"))))
    });
    let stalled = rt.block_on(until(&url, id, "status", |_| true));
    s3.resume();
    let csv = rt.block_on(finish(&url, &pg, objects.as_ref(), id));
    rt.block_on(watcher).unwrap();
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock().unwrap());
    assert_eq!(stalled.state, SweepState::Running, "the outage must come before the end");
    assert!(csv == reference, "the report differs from the undisturbed run:\n{csv}\nvs\n{reference}");
    cluster.stop();
}

#[test]
fn sweeps_survive_kills_restarts_and_freezes_with_identical_results() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    workload(dir);
    let lease_ms = 1500;
    // One attempt per shard: kills, expiries and hand-backs are lost leases, not
    // failures, so none of this damage may fail a shard (the coordinator's
    // default rule for shards that kill their workers included).
    let opts = ClusterOptions { dir: dir.join("run"), workers: 3, lease_ms, heartbeat_ms: 300, ..Default::default() };
    let mut cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, pg) = (cluster.url.clone(), cluster.postgres.url());
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let submit = |rt: &tokio::runtime::Runtime| rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();

    // The undisturbed run.
    let started = Instant::now();
    let reference_id = submit(&rt);
    let reference = rt.block_on(finish(&url, &pg, objects.as_ref(), reference_id));
    let undisturbed = started.elapsed();
    eprintln!("undisturbed sweep: {:.1} s", undisturbed.as_secs_f64());
    let total = rt.block_on(until(&url, reference_id, "status", |_| true)).total;

    // Each damage returns the worker it froze, if it froze one.
    let scenarios: [(&str, Damage); 7] = [
        ("workers killed with SIGKILL again and again", kill_workers_again_and_again),
        ("coordinator killed with SIGKILL and restarted", kill_the_coordinator_twice),
        ("coordinator stopped with SIGTERM (drained) and restarted", drain_and_restart_the_coordinator),
        ("PostgreSQL restarted", restart_postgres),
        ("a worker frozen past its lease (SIGSTOP, then SIGCONT)", freeze_a_worker_past_its_lease),
        ("a worker stopped with SIGTERM finishes its shard and exits", stop_a_worker_with_sigterm),
        ("workers preempted again and again (SIGUSR1, then SIGTERM at once: hand back now)", preempt_workers_again_and_again),
    ];

    let logs = [dir.join("run/logs/worker-0.log"), dir.join("run/logs/worker-1.log")];
    for (name, damage) in &scenarios {
        let started = Instant::now();
        let log_from = logs.clone().map(|l| std::fs::metadata(l).map(|m| m.len() as usize).unwrap_or(0));
        let id = submit(&rt);
        let (errors, watcher) = watch(&rt, cluster.url.clone(), id);
        let frozen = damage(&mut cluster, &rt, id, total);
        let csv = rt.block_on(finish(&cluster.url, &pg, objects.as_ref(), id));
        let (polls, fastest) = rt.block_on(watcher).unwrap();
        // The pace is measured from status samples held in the coordinator's memory: a
        // restarted coordinator needs a second of samples before it knows it again.
        assert!(fastest > 0.0 || name.contains("coordinator"), "{name}: sweep status never showed a throughput");
        let errors = errors.lock().unwrap().clone();
        eprintln!("{name}: done in {:.1} s, status polled {polls} times, up to {fastest:.0} inferences/s", started.elapsed().as_secs_f64());
        assert!(errors.is_empty(), "{name}: sweep status was inconsistent: {errors:?}");
        assert!(csv == reference, "{name}: the report differs from the undisturbed run:\n{csv}\nvs\n{reference}");
        if let Some(w) = frozen {
            // The frozen worker's late work was refused or abandoned, never counted.
            let log = std::fs::read_to_string(&logs[w]).unwrap();
            let tail = &log[log_from[w].min(log.len())..];
            assert!(tail.contains("lost leases") || tail.contains("commit refused"), "worker-{w} never noticed its lost lease:\n{tail}");
        }
    }
    cluster.stop();
}

/// Damage done to a running sweep `id` of `total` shards on the cluster:
/// the worker it froze, if it froze one.
type Damage = fn(&mut LocalCluster, &tokio::runtime::Runtime, i64, u32) -> Option<usize>;

/// Workers killed with SIGKILL again and again.
fn kill_workers_again_and_again(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    for round in 0..5 {
        mid(rt, &c.url, id, total, 0.12 * (round + 1) as f64);
        let i = round % 3;
        c.workers[i].kill9();
        std::thread::sleep(Duration::from_millis(50));
        c.add_worker(i).unwrap();
    }
    // Five registrations were killed; only the three running workers stay
    // live (killed ones drop out after three missed heartbeats).
    rt.block_on(until(&c.url, id, "the killed workers to stop counting as live", |s| s.workers_alive == 3));
    None
}

/// Coordinator killed with SIGKILL and restarted.
fn kill_the_coordinator_twice(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    mid(rt, &c.url, id, total, 0.3);
    c.restart_coordinator().unwrap();
    mid(rt, &c.url, id, total, 0.6);
    c.restart_coordinator().unwrap();
    None
}

/// Coordinator stopped with SIGTERM (drained) and restarted.
fn drain_and_restart_the_coordinator(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    mid(rt, &c.url, id, total, 0.4);
    c.restart_coordinator_gracefully().unwrap();
    None
}

/// PostgreSQL restarted.
fn restart_postgres(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    mid(rt, &c.url, id, total, 0.3);
    c.postgres.stop();
    // Down until the coordinator has met the outage (status fails).
    let config = ClientConfig::new(c.url.clone());
    poll("the coordinator to meet the outage", || rt.block_on(async { Admin::connect(&config).await.ok()?.status(id).await.err() }).is_some());
    c.postgres.restart().unwrap();
    None
}

/// A worker frozen past its lease (SIGSTOP, then SIGCONT).
fn freeze_a_worker_past_its_lease(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    let pg = c.postgres.url();
    mid(rt, &c.url, id, total, 0.2);
    // Freeze whichever worker holds a shard first (one may still be backing
    // off after the previous scenario's outage).
    let deadline = Instant::now() + Duration::from_secs(30);
    let w = loop {
        if let Some(w) = (0..2).find(|w| rt.block_on(held_by(&pg, id, &format!("worker-{w}"))) > 0) {
            break w;
        }
        assert!(Instant::now() < deadline, "no worker held a shard");
        std::thread::sleep(Duration::from_millis(5));
    };
    c.workers[w].signal("STOP");
    // Frozen until its lease has expired and the reaper took its shard back.
    poll("the frozen worker's lease to be reaped", || rt.block_on(held_by(&pg, id, &format!("worker-{w}"))) == 0);
    c.workers[w].signal("CONT");
    Some(w)
}

/// A worker stopped with SIGTERM finishes its shard and exits.
fn stop_a_worker_with_sigterm(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    let pg = c.postgres.url();
    mid(rt, &c.url, id, total, 0.2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(held_by(&pg, id, "worker-1")) == 0 {
        assert!(Instant::now() < deadline && !c.workers[1].exited(), "worker-1 held no shard (exited: {})", c.workers[1].exited());
        std::thread::sleep(Duration::from_millis(5));
    }
    c.workers[1].signal("TERM");
    let t = Instant::now();
    while !c.workers[1].exited() {
        assert!(t.elapsed() < Duration::from_secs(20), "worker-1 did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // It handed nothing to the reaper: none of its shards is still leased.
    assert_eq!(rt.block_on(held_by(&pg, id, "worker-1")), 0, "a stopped worker keeps no lease");
    c.add_worker(1).unwrap();
    None
}

/// Workers preempted again and again (SIGUSR1, then SIGTERM at once: hand back now).
fn preempt_workers_again_and_again(c: &mut LocalCluster, rt: &tokio::runtime::Runtime, id: i64, total: u32) -> Option<usize> {
    let pg = c.postgres.url();
    for round in 0..4 {
        mid(rt, &c.url, id, total, 0.15 * (round + 1) as f64);
        let i = round % 3;
        let name = format!("worker-{i}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while rt.block_on(held_by(&pg, id, &name)) == 0 {
            assert!(Instant::now() < deadline && !c.workers[i].exited(), "{name} held no shard (exited: {})", c.workers[i].exited());
            std::thread::sleep(Duration::from_millis(2));
        }
        c.workers[i].signal("USR1");
        c.workers[i].signal("TERM");
        let t = Instant::now();
        while !c.workers[i].exited() {
            assert!(t.elapsed() < Duration::from_secs(20), "{name} did not exit after SIGUSR1 + SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rt.block_on(held_by(&pg, id, &name)), 0, "a preempted worker keeps no lease");
        c.add_worker(i).unwrap();
    }
    None
}

/// Sweep `id` once done, its status asked through `config` (with its token).
async fn done_through(config: &ClientConfig, id: i64) -> jagged_domain::status::SweepStatus {
    let mut c = Admin::connect(config).await.unwrap();
    let t = Instant::now();
    loop {
        let s = c.status(id).await.unwrap();
        if s.state == SweepState::Done {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "sweep {id} did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A finished sweep's summary CSV, once nothing of it is leased and every
/// shard has its one output.
async fn settled_report(pg: &str, objects: &dyn object_store::ObjectStore, id: i64) -> String {
    let store = jagged_store::Store::connect(pg, 2).await.unwrap();
    assert_eq!(store.leased_count(id).await.unwrap(), 0);
    assert_eq!(store.outputs(id).await.unwrap().len() as i64, store.sweep(id).await.unwrap().total as i64);
    jagged_report::build(&store, objects, id).await.unwrap().csv()
}

/// A network namespace joined to this one by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    /// Creates namespace `name` with `10.<a>.<b>.2` inside and `.1` outside.
    fn create(name: &str, subnet: &str) -> Result<Netns, String> {
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.into(), host_if: format!("{name}-h") };
        let peer = format!("{name}-n");
        ip(&["link", "add", &ns.host_if, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", name])?;
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        ip(&["netns", "exec", name, "ip", "addr", "add", &format!("{subnet}.2/24"), "dev", &peer])?;
        ip(&["netns", "exec", name, "ip", "link", "set", &peer, "up"])?;
        ip(&["netns", "exec", name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Cuts (`false`) or restores (`true`) the link.
    fn link(&self, up: bool) {
        let st = std::process::Command::new("ip").args(["link", "set", &self.host_if, if up { "up" } else { "down" }]).status().unwrap();
        assert!(st.success());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A worker in its own network namespace is cut off from the coordinator (its
/// link taken down) while holding a shard, for longer than its lease: the shard
/// is reassigned, the worker's late work is refused or abandoned, and the report
/// equals the undisturbed run's. Needs root (CI runs as root); skipped with a
/// message where network namespaces cannot be made.
#[test]
fn a_worker_cut_off_by_the_network_changes_nothing() {
    ort();
    let name = format!("jg{}", std::process::id() % 100_000);
    let subnet = format!("10.{}.{}", 100 + std::process::id() % 100, std::process::id() % 250);
    let ns = match Netns::create(&name, &subnet) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("skipping a_worker_cut_off_by_the_network_changes_nothing: network namespaces unavailable here ({e})");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    workload(dir);
    let (wt, at) = (format!("w{}", std::process::id()), format!("a{}", std::process::id()));
    let lease_ms = 1500;
    let opts = ClusterOptions {
        dir: dir.join("run"),
        lease_ms,
        heartbeat_ms: 300,
        env: vec![
            ("JAGGED_LISTEN".into(), "0.0.0.0:0".into()),
            ("JAGGED_WORKER_TOKEN".into(), wt.clone()),
            ("JAGGED_ADMIN_TOKEN".into(), at.clone()),
        ],
        ..Default::default()
    };
    let cluster = LocalCluster::start(opts).unwrap();
    let port = cluster.url.rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let admin = jagged_proto::auth::Token::new(&at).unwrap();
    let pg = cluster.postgres.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let config = ClientConfig::new(url.clone()).with_token(Some(admin));
    let submit = || rt.block_on(jagged_client::submit(&config, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap().sweep_id;
    let wait_done = |id: i64| rt.block_on(done_through(&config, id));
    let report = |id: i64| rt.block_on(settled_report(&pg, objects.as_ref(), id));
    let reference_id = submit();
    wait_done(reference_id);
    let reference = report(reference_id);

    // A second worker inside the namespace, reaching the coordinator over the veth pair.
    let log = dir.join("run/logs/worker-ns.log");
    let args: Vec<String> = [
        "netns",
        "exec",
        &name,
        jagged_bin().to_str().unwrap(),
        "worker",
        "--coordinator",
        &format!("http://{subnet}.1:{port}"),
        "--store",
        &cluster.store_url,
        "--threads",
        "1",
        "--name",
        "worker-ns",
    ]
    .map(String::from)
    .to_vec();
    let mut outsider = jagged_local::Proc::spawn("worker-ns", std::path::Path::new("ip"), &args, &[("JAGGED_WORKER_TOKEN".into(), wt)], &log);
    let outsider = outsider.as_mut().expect("spawning the namespaced worker");
    let id = submit();
    let t = Instant::now();
    while rt.block_on(held_by(&pg, id, "worker-ns")) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the namespaced worker never held a shard: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    ns.link(false);
    // Cut off until its lease has expired and the reaper took its shard back.
    poll("the cut-off worker's lease to be reaped", || rt.block_on(held_by(&pg, id, "worker-ns")) == 0);
    ns.link(true);
    let st = wait_done(id);
    assert_eq!((st.done, st.failed), (st.total, 0));
    assert!(report(id) == reference, "the report differs from the undisturbed run");
    // Once its packets flow again (TCP retransmits with backoff), the worker learns
    // that its lease is gone: its shard is abandoned or its commit refused.
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("lost leases") || text.contains("commit refused") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the cut-off worker never learnt it lost its lease: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(report(id) == reference, "nothing the cut-off worker did afterwards counts");
    outsider.terminate(Duration::from_secs(5));
    cluster.stop();
}
