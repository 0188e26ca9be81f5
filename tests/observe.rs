//! Watching sweeps: a real Prometheus scrapes a coordinator and two workers; the
//! alert rules pass their unit tests; every Grafana panel's query returns data;
//! a standard gRPC client checks health and reflection; headless Chromium
//! watches the dashboard update; cost adds up; logs are JSON with the shard's
//! fields.

use jagged_client::ClientConfig;
use jagged_domain::cost::Outcome;
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{http_get, root, until, until_with, Prometheus, Workload};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn python() -> std::path::PathBuf {
    let p = root().join(".cache/jagged/venv/bin/python3");
    assert!(p.is_file(), "{} not found: run `scripts/fetch.sh venv` (just test does)", p.display());
    p
}

fn cluster(w: &Workload, workers: usize, env: Vec<(String, String)>, coordinator_args: Vec<String>) -> LocalCluster {
    LocalCluster::start(ClusterOptions {
        dir: w.dir().join("run"),
        workers,
        lease_ms: 3_000,
        heartbeat_ms: 300,
        store: Some(w.store.display().to_string()),
        env,
        coordinator_args,
        ..Default::default()
    })
    .unwrap()
}

fn read_addr(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(a) = std::fs::read_to_string(path) {
            if a.ends_with('\n') {
                return a.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "{} was not written", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Metric names a PromQL expression uses, as documented (histogram series
/// `_bucket`, `_sum`, `_count` named by their histogram).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("jagged_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        out.insert(base.to_string());
        i = end;
    }
    out
}

#[test]
fn prometheus_scrapes_a_sweep_and_every_panel_and_alert_rule_holds() {
    let w = Workload::new("observed", 6, 2, 1, 8);
    let metrics_port = jagged_testkit::free_port();
    let env = vec![("JAGGED_LOG_FORMAT".to_string(), "json".to_string())];
    let coordinator_args = vec!["--metrics-listen".to_string(), format!("127.0.0.1:{metrics_port}"), "--price".into(), "cpu=3.6".into()];
    let mut c = cluster(&w, 0, env, coordinator_args);
    let run = w.dir().join("run");
    let mut targets = vec![];
    for i in 0..2 {
        let file = run.join(format!("worker-{i}.metrics"));
        c.add_worker_with(i, &["--metrics-listen", "127.0.0.1:0", "--metrics-addr-file", &file.display().to_string()]).unwrap();
        targets.push(read_addr(&file));
    }
    let prom = Prometheus::start(&w.dir().join("prometheus"), &[("coordinator", vec![format!("127.0.0.1:{metrics_port}")]), ("worker", targets)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
    let config = ClientConfig::new(c.url.clone());
    let id = rt.block_on(jagged_client::submit(&config, &w.dir().join("spec.toml"), objects.as_ref(), &Default::default())).unwrap().sweep_id;
    let status = rt.block_on(until(&c.url, id, "done", |s| s.state != SweepState::Running));
    assert_eq!(status.state, SweepState::Done);
    let store = rt.block_on(jagged_store::Store::connect(&c.postgres.url(), 2)).unwrap();
    let report = rt.block_on(jagged_report::build(&store, objects.as_ref(), id)).unwrap();
    let reported: u64 = report.rows.iter().map(|r| r.totals.inferences).sum();
    assert_eq!(reported as i64, status.inferences_done);

    // The sweep's inference total through PromQL, once the last scrapes are in:
    // from the workers' counters and from the coordinator's gauge.
    let from_workers = format!("sum(jagged_worker_inferences_total{{sweep=\"{id}\"}})");
    let from_coordinator = format!("max(jagged_sweep_inferences{{sweep=\"{id}\", state=\"done\"}})");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (prom.value(&from_workers), prom.value(&from_coordinator));
        if a == Some(reported as f64) && b == Some(reported as f64) {
            println!("PromQL `{from_workers}` = {} (report: {reported})", a.unwrap());
            break;
        }
        assert!(Instant::now() < deadline, "PromQL says {a:?} and {b:?}; the report says {reported}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(prom.value("sum(jagged_worker_shards_total{outcome=\"committed\"})"), Some(status.total as f64));
    assert_eq!(prom.value("sum(jagged_commits_total{outcome=\"accepted\"})"), Some(status.total as f64));
    assert_eq!(prom.value("max(jagged_workers_live)"), Some(2.0));

    // Every panel of the Grafana dashboard returns data, and uses only documented metrics.
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let documented = |name: &str| docs.contains(&format!("`{name}`")) || docs.contains(&format!("`{name}_total`"));
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("deploy/prometheus/grafana-dashboard.json")).unwrap()).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut exprs = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap().replace("$__rate_interval", "1m");
            for name in metric_names(&expr) {
                assert!(documented(&name), "panel `{}` uses `{name}`, which docs/metrics.md does not document", p["title"]);
            }
            exprs.push((p["title"].to_string(), expr));
        }
    }
    // Rates over a panel's window need two samples of its series: scraped
    // every second, each comes within a few.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let empty: Vec<&(String, String)> = exprs.iter().filter(|(_, expr)| prom.query(expr).is_empty()).collect();
        if empty.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "panels returned no data: {empty:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // So does every alert rule, and every metric either process exports.
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let rules: String = rules.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    for name in metric_names(&rules) {
        assert!(documented(&name), "alerts.yml uses `{name}`, which docs/metrics.md does not document");
    }
    let mut exported = BTreeSet::new();
    // (A worker's families appear once it has done some work: ask both.)
    for addr in [format!("127.0.0.1:{metrics_port}"), read_addr(&run.join("worker-0.metrics")), read_addr(&run.join("worker-1.metrics"))] {
        let (code, headers, body) = http_get(&addr, "/metrics", &[]).unwrap();
        assert_eq!(code, 200);
        assert!(headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("application/openmetrics-text")), "{headers:?}");
        exported.extend(body.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap().to_string()));
    }
    for name in
        ["jagged_leases_granted", "jagged_claim_duration_seconds", "jagged_sweep_shards", "jagged_worker_inferences", "jagged_worker_stage_seconds"]
    {
        assert!(exported.contains(name), "`{name}` is not exported: {exported:?}");
    }
    for name in &exported {
        assert!(documented(name), "`{name}` is exported but docs/metrics.md does not document it");
    }

    // The alert rules are valid, and their unit tests pass.
    let promtool = jagged_testkit::which("promtool").expect("promtool (Debian's prometheus package)");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]] {
        let out = std::process::Command::new(&promtool).args(args).current_dir(root().join("deploy/prometheus")).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("SUCCESS"), "promtool {}: {text}", args.join(" "));
        println!("promtool {}: {}", args.join(" "), text.trim().replace('\n', " | "));
    }

    json_logs_carry_each_shard(&run, id, status.total);
    c.stop();
}

/// Logs as JSON: every line of the workers' logs is an object, and a
/// committed shard's line carries its sweep, shard, attempt and worker.
fn json_logs_carry_each_shard(run: &std::path::Path, id: i64, shards: u32) {
    let log = ["worker-0", "worker-1"].map(|w| std::fs::read_to_string(run.join(format!("logs/{w}.log"))).unwrap()).join("\n");
    let mut committed = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
        if v["message"] == "shard committed" {
            let span = v["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "shard")).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(span["sweep"], id, "{line}");
            assert!(span["shard"].as_i64().unwrap() > 0 && span["attempt"] == 1 && span["worker"].as_i64().unwrap() > 0, "{line}");
            committed += 1;
        }
    }
    assert_eq!(committed, shards, "one `shard committed` line per shard:\n{log}");
}

#[test]
fn a_standard_grpc_client_checks_health_and_lists_services_by_reflection() {
    let w = Workload::new("grpc", 1, 1, 1, 8);
    let _c = jagged_testkit::coordinator(&w.pg.url(), w.dir(), "c");
    let url = jagged_testkit::coordinator_url(w.dir(), "c");
    let out = std::process::Command::new(python()).arg(root().join("tests/grpc_check.py")).arg(url.trim_start_matches("http://")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in ["", "jagged.v1.WorkerService", "jagged.v1.AdminService"] {
        assert_eq!(v["health"][s], "SERVING", "{v}");
    }
    assert_eq!(v["health"]["no.such.Service"], "NOT_FOUND", "{v}");
    let services: Vec<&str> = v["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for s in ["grpc.health.v1.Health", "jagged.v1.AdminService", "jagged.v1.WorkerService"] {
        assert!(services.contains(&s), "reflection lists {services:?}");
    }
    let methods: Vec<&str> = v["worker_methods"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(methods, ["Complete", "CompleteMany", "Fail", "Heartbeat", "Lease", "Register"], "{v}");
}

/// Headless Chromium, driven over the DevTools protocol by `tests/browser.py`.
struct Browser {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(python())
            .arg(root().join("tests/browser.py"))
            .arg(jagged_testkit::chromium())
            .arg(profile.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Browser { child, out, _profile: profile }
    }

    fn send(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        writeln!(self.child.stdin.as_mut().unwrap(), "{cmd}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("browser said `{line}`: {e}"));
        assert_eq!(v["ok"], true, "{cmd}: {v}");
        v["value"].clone()
    }

    fn eval(&mut self, js: &str) -> serde_json::Value {
        self.send(serde_json::json!({"op": "eval", "expr": js}))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_follows_a_sweep_live_in_a_browser_and_needs_the_admin_token() {
    let w = Workload::new("watched sweep", 8, 2, 1, 8);
    let (worker_token, admin_token) = ("worker-token-for-the-dashboard-test", "admin-token-for-the-dashboard-test");
    let env = vec![("JAGGED_WORKER_TOKEN".to_string(), worker_token.to_string()), ("JAGGED_ADMIN_TOKEN".to_string(), admin_token.to_string())];
    let addr_file = w.dir().join("http.addr");
    let args = vec!["--http".into(), "127.0.0.1:0".into(), "--http-addr-file".into(), addr_file.display().to_string()];
    let mut c = cluster(&w, 0, env, args);
    let http = read_addr(&addr_file);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
    let config = ClientConfig::new(c.url.clone()).with_token(jagged_proto::auth::Token::new(admin_token));
    let id = rt.block_on(jagged_client::submit(&config, &w.dir().join("spec.toml"), objects.as_ref(), &Default::default())).unwrap().sweep_id;

    // Without the admin token every page is refused; with it, served.
    let page = format!("/sweeps/{id}");
    for path in ["/", page.as_str(), "/api/sweeps", "/fragment/sweeps"] {
        let (code, _, body) = http_get(&http, path, &[]).unwrap();
        assert_eq!(code, 401, "{path}: {body}");
        let (code, _, _) = http_get(&http, path, &[("Authorization", "Bearer not-the-token")]).unwrap();
        assert_eq!(code, 401, "{path}");
        let (code, _, _) = http_get(&http, path, &[("Authorization", &format!("Bearer {admin_token}"))]).unwrap();
        assert_eq!(code, 200, "{path}");
    }
    assert_eq!(http_get(&http, "/metrics", &[]).unwrap().0, 200, "metrics need no token");

    let shots = root().join("target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let mut b = Browser::start();
    // Refused in the browser too, without the token.
    b.send(serde_json::json!({"op": "navigate", "url": format!("http://{http}{page}")}));
    let text = b.eval("document.body.innerText").as_str().unwrap_or_default().to_string();
    assert!(text.contains("admin token is required"), "{text}");
    // The token once in the address: a cookie from then on, and the address loses it.
    b.send(serde_json::json!({"op": "navigate", "url": format!("http://{http}{page}?token={admin_token}")}));
    assert_eq!(b.eval("location.search"), "", "the token stays out of the address bar");
    let read = |b: &mut Browser| -> (String, i64, i64, i64) {
        let v = b.eval(
            "[document.getElementById('state').textContent, document.getElementById('shards-done').textContent, \
             document.getElementById('inferences-done').textContent, document.body.dataset.updates]",
        );
        let n = |i: usize| v[i].as_str().unwrap().trim().parse::<i64>().unwrap();
        (v[0].as_str().unwrap().to_string(), n(1), n(2), n(3))
    };
    let (state, done, inferences, _) = read(&mut b);
    assert_eq!((state.as_str(), done, inferences), ("running", 0, 0), "no worker yet");
    b.send(serde_json::json!({"op": "screenshot", "path": shots.join("dashboard-queued.png")}));

    // Workers start; the open page follows the sweep without a reload.
    for i in 0..2 {
        c.add_worker(i).unwrap();
    }
    let mut seen_running_progress = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let final_state = loop {
        let (state, done, inferences, updates) = read(&mut b);
        if state == "running" && done > 0 && !seen_running_progress {
            seen_running_progress = true;
            b.send(serde_json::json!({"op": "screenshot", "path": shots.join("dashboard-running.png")}));
        }
        if state == "done" {
            assert!(updates > 0, "the page never refreshed itself");
            break (done, inferences);
        }
        assert!(Instant::now() < deadline, "the page still says {state}, {done} shards, after {updates} updates");
        std::thread::sleep(Duration::from_millis(200));
    };
    let status = rt.block_on(until_with(&config, id, "done", |s| s.state == SweepState::Done));
    assert_eq!(final_state, (status.done as i64, status.inferences_done), "the page and `sweep status` agree");
    // Once done the page shows the report: the table and the figures, served here.
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.eval("document.querySelectorAll('#summary, figure img').length").as_i64().unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "no report on the finished sweep's page");
        std::thread::sleep(Duration::from_millis(200));
    }
    let summary = b.eval("document.getElementById('summary').textContent").as_str().unwrap().to_string();
    assert!(summary.contains("tiny64"), "{summary}");
    let loaded = b.eval("Array.from(document.querySelectorAll('figure img')).every(i => i.complete && i.naturalWidth > 0)");
    assert_eq!(loaded, true, "every figure loads");
    b.send(serde_json::json!({"op": "screenshot", "path": shots.join("dashboard-done.png")}));
    // The overview lists it with the same numbers.
    b.send(serde_json::json!({"op": "navigate", "url": format!("http://{http}/")}));
    let row = b.eval(&format!("document.querySelector('tr[data-sweep=\"{id}\"] .shards-done').textContent"));
    assert_eq!(row.as_str().unwrap(), format!("{}/{}", status.done, status.total));
    b.send(serde_json::json!({"op": "screenshot", "path": shots.join("dashboard-overview.png")}));
    for f in ["dashboard-queued.png", "dashboard-done.png", "dashboard-overview.png"] {
        let img = image::open(shots.join(f)).unwrap().to_rgb8();
        let colours: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 20, "{f} is blank");
    }
    println!("screenshots in {}", shots.display());
    c.stop();
}

#[test]
fn cost_adds_up_per_worker_and_model_and_a_killed_workers_attempt_counts_as_spent() {
    // Shards of 8 images x 441 points, long enough that a heartbeat (every
    // 300 ms) lands while one runs.
    let w = Workload::new("priced", 24, 10, 8, 16);
    // Two models, so the per-model sums have something to add.
    jagged_testkit::tiny_side(w.dir(), 48);
    let spec = std::fs::read_to_string(w.dir().join("spec.toml")).unwrap().replace(
        "[[models]]\npath = \"models/tiny64.onnx\"\n",
        "[[models]]\npath = \"models/tiny64.onnx\"\n[[models]]\npath = \"models/tiny48.onnx\"\n",
    );
    std::fs::write(w.dir().join("spec.toml"), spec).unwrap();
    let mut c = cluster(&w, 0, vec![], vec!["--price".into(), "cpu=36".into()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
    let config = ClientConfig::new(c.url.clone());
    let over = jagged_client::Overrides { prices: [("cpu".to_string(), 72.0)].into(), ..Default::default() };
    let id = rt.block_on(jagged_client::submit(&config, &w.dir().join("spec.toml"), objects.as_ref(), &over)).unwrap().sweep_id;
    let store = rt.block_on(jagged_store::Store::connect(&c.postgres.url(), 2)).unwrap();

    // One worker starts, reports busy time in a heartbeat mid-shard, and is killed.
    c.add_worker(0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let signal = |sig: &str, pid: u32| assert!(std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
    let pid = c.workers[0].pid().unwrap();
    let busy_at_kill = loop {
        let busy = |live: &[jagged_store::LiveWorker]| live.iter().filter_map(|l| l.busy_seconds).find(|b| *b > 0.0);
        if busy(&rt.block_on(store.live_workers(0)).unwrap()).is_some() {
            // Frozen first, so it cannot commit that shard meanwhile; then killed
            // if the shard is still leased with busy time reported once a commit
            // sent just before the freeze has had time to land (it would make the
            // shard done and leave the next one, without busy time, to be abandoned).
            signal("-STOP", pid);
            // A frozen worker sends nothing more; what it sent just before
            // lands within milliseconds. Nothing signals that it has, so this
            // is the one wait here bounded by time rather than a condition.
            std::thread::sleep(Duration::from_millis(500));
            if let Some(b) = busy(&rt.block_on(store.live_workers(0)).unwrap()) {
                c.workers[0].kill9();
                break b;
            }
            signal("-CONT", pid);
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat reported busy time; the worker's log:\n{}\nthe coordinator's:\n{}",
            std::fs::read_to_string(w.dir().join("run/logs/worker-0.log")).unwrap_or_default(),
            std::fs::read_to_string(w.dir().join("run/logs/coordinator.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for i in 1..3 {
        c.add_worker(i).unwrap();
    }
    let status = rt.block_on(until(&c.url, id, "done", |s| s.state != SweepState::Running));
    assert_eq!(status.state, SweepState::Done);

    let spent = rt.block_on(store.spent(id)).unwrap();
    let abandoned: Vec<_> = spent.iter().filter(|l| l.outcome == Outcome::Abandoned).collect();
    assert_eq!(abandoned.len(), 1, "{spent:?}");
    assert_eq!(abandoned[0].worker, "worker-0");
    assert!(abandoned[0].busy_seconds >= busy_at_kill && abandoned[0].busy_seconds > 0.0, "{:?} (heartbeat said {busy_at_kill})", abandoned[0]);
    let prices = rt.block_on(store.prices(id)).unwrap();
    assert_eq!(prices.get("cpu"), Some(&72.0), "the price given at submit");
    let all = jagged_domain::cost::Totals::of(&spent, &prices);
    assert_eq!(all.inferences, status.inferences_done);
    assert!((status.busy_seconds - all.busy_done).abs() < 1e-9 && (status.busy_seconds_lost - all.busy_lost).abs() < 1e-9);
    assert!((status.estimated_cost - (all.busy_done + all.busy_lost) / 3600.0 * 72.0).abs() < 1e-9, "the sweep's price wins over the coordinator's");
    // Per worker and per model, the sums are the sweep's; busy time fits in wall time.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let workers: BTreeSet<i64> = spent.iter().map(|l| l.worker_id).collect();
    let models: BTreeSet<usize> = spent.iter().map(|l| l.model_idx).collect();
    assert_eq!(models.len(), 2);
    for (groups, key) in [(&workers.iter().map(|&w| w as usize).collect::<BTreeSet<_>>(), 0), (&models, 1)] {
        let (mut busy, mut lost, mut inf) = (0.0, 0.0, 0);
        for g in groups {
            let t = jagged_domain::cost::Totals::of(
                spent.iter().filter(|l| if key == 0 { l.worker_id as usize == *g } else { l.model_idx == *g }),
                &prices,
            );
            if key == 0 {
                assert!(t.busy_done + t.busy_lost <= t.wall + 1e-9, "worker {g}: busy {} > wall {}", t.busy_done + t.busy_lost, t.wall);
            }
            (busy, lost, inf) = (busy + t.busy_done, lost + t.busy_lost, inf + t.inferences);
        }
        assert!(close(busy, all.busy_done) && close(lost, all.busy_lost) && inf == all.inferences, "{}", if key == 0 { "workers" } else { "models" });
    }
    // cost.csv in the report says the same.
    let report = rt.block_on(jagged_report::build(&store, objects.as_ref(), id)).unwrap();
    let out = w.dir().join("report");
    report.write(&out).unwrap();
    let csv = std::fs::read_to_string(out.join("cost.csv")).unwrap();
    let sweep_row = csv.lines().find(|l| l.starts_with("sweep,")).unwrap();
    let cells: Vec<&str> = sweep_row.split(',').collect();
    assert!(close(cells[6].parse().unwrap(), all.busy_done) && close(cells[7].parse().unwrap(), all.busy_lost), "{sweep_row}");
    assert_eq!(cells[9].parse::<i64>().unwrap(), status.inferences_done);
    assert!(csv.lines().any(|l| l.starts_with("attempts,") && l.contains(",worker-0,cpu,abandoned,")), "{csv}");
    c.stop();
}

/// Every leaf of a JSON value by its path (`families[0].resample.filter`).
fn leaves(v: &serde_json::Value, at: String, out: &mut std::collections::BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| leaves(x, if at.is_empty() { k.clone() } else { format!("{at}.{k}") }, out)),
        serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| leaves(x, format!("{at}[{i}]"), out)),
        x => {
            out.insert(at, x.clone());
        }
    }
}

#[test]
fn protocol_cards_differ_exactly_where_the_protocols_do_and_labels_name_families() {
    let w = Workload::new("card", 3, 1, 3, 8);
    let base = std::fs::read_to_string(w.dir().join("spec.toml")).unwrap();
    let with = |resample: &str| {
        base.replace("kind = \"crop\"\n", &format!("kind = \"crop\"\nlabel = \"Shifted crops\"\nresample = {{ filter = \"{resample}\" }}\n"))
    };
    std::fs::write(w.dir().join("bilinear.toml"), with("bilinear")).unwrap();
    std::fs::write(w.dir().join("nearest.toml"), with("nearest")).unwrap();
    let c = cluster(&w, 1, vec![], vec![]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
    let config = ClientConfig::new(c.url.clone());
    let store = rt.block_on(jagged_store::Store::connect(&c.postgres.url(), 2)).unwrap();
    let mut cards = vec![];
    for spec in ["bilinear.toml", "nearest.toml"] {
        let id = rt.block_on(jagged_client::submit(&config, &w.dir().join(spec), objects.as_ref(), &Default::default())).unwrap().sweep_id;
        assert_eq!(rt.block_on(until(&c.url, id, "done", |s| s.state != SweepState::Running)).state, SweepState::Done);
        let report = rt.block_on(jagged_report::build(&store, objects.as_ref(), id)).unwrap();
        let out = w.dir().join(format!("report-{id}"));
        report.write(&out).unwrap();
        // The label names the family in the table, and the card leads summary.md and report.html.
        assert_eq!(report.rows[0].family_label, "Shifted crops");
        assert!(report.csv().contains(",Shifted crops,"), "{}", report.csv());
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.find("## Protocol").unwrap() < md.find("| model").unwrap(), "{md}");
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("id=\"protocol\"") && html.contains(crate::observe::short(&report.protocol).as_str()));
        let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("protocol.json")).unwrap()).unwrap();
        assert_eq!(card, report.protocol);
        cards.push(card);
    }
    let (mut a, mut b) = (Default::default(), Default::default());
    leaves(&cards[0], String::new(), &mut a);
    leaves(&cards[1], String::new(), &mut b);
    let differ: Vec<&String> = a.keys().chain(b.keys()).collect::<BTreeSet<_>>().into_iter().filter(|k| a.get(*k) != b.get(*k)).collect();
    assert_eq!(differ, ["families[0].resample.filter", "fingerprint"], "{}\n{}", cards[0], cards[1]);
    assert_eq!((a["families[0].resample.filter"].as_str(), b["families[0].resample.filter"].as_str()), (Some("bilinear"), Some("nearest")));
    // What the card records.
    let card = &cards[0];
    assert_eq!(card["families"][0]["label"], "Shifted crops");
    assert_eq!(card["families"][0]["kind"], "crop");
    assert_eq!(card["dataset"]["images"], 3);
    assert_eq!(card["models"][0]["input_size"], 64);
    assert_eq!(card["models"][0]["runs"][0]["provider"], "cpu");
    assert_eq!(card["models"][0]["runs"][0]["precision"], "fp32");
    let ort = card["models"][0]["runs"][0]["onnxruntime"].as_str().unwrap();
    assert!(ort.chars().next().is_some_and(|c| c.is_ascii_digit()) && ort.contains('.'), "ONNX Runtime version `{ort}`");
    assert_eq!(card["notes"].as_array().map(Vec::len), Some(0));
    c.stop();
}

fn short(card: &serde_json::Value) -> String {
    jagged_report::protocol::short(card)
}
