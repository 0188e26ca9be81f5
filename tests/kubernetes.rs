//! The Kubernetes manifests: every overlay renders with `kubectl kustomize`,
//! validates against the API schemas of Kubernetes 1.32 (`kubernetes-validate`,
//! strict), names only flags and variables the binary knows, and the cpu
//! overlay's own command lines and environments, run as local processes
//! against a private PostgreSQL and store, complete a sweep; the KEDA
//! ScaledObject's query runs on our tables and counts the queued shards.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_local::Proc;
use jagged_testkit::{jagged_bin, root, until_with};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const KUBERNETES: &str = "1.32.0";

fn overlays() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join("deploy/kubernetes/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `kubectl kustomize <overlay>`, as YAML.
fn render(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("deploy/kubernetes/overlays").join(overlay))
        .output()
        .expect("kubectl (with kustomize) is needed to render the manifests");
    assert!(out.status.success(), "{overlay}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn venv(tool: &str) -> std::path::PathBuf {
    let p = root().join(".cache/jagged/venv/bin").join(tool);
    assert!(p.is_file(), "{} not found: run `scripts/fetch.sh venv` (just test does)", p.display());
    p
}

/// The rendered objects, as JSON.
fn objects(yaml: &str, dir: &Path) -> Vec<Value> {
    let f = dir.join("rendered.yaml");
    std::fs::write(&f, yaml).unwrap();
    let out = Command::new(venv("python3"))
        .args(["-c", "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The variables a role reads: its `--help`'s `[env: ...]` and the README's table.
fn known_variables(role: &str) -> BTreeSet<String> {
    let help = Command::new(jagged_bin()).args([role, "--help"]).output().unwrap();
    let mut known: BTreeSet<String> = String::from_utf8_lossy(&help.stdout)
        .split("[env: ")
        .skip(1)
        .map(|s| s.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).next().unwrap().to_string())
        .collect();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or("");
        known.extend(
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .map(String::from),
        );
    }
    known
}

/// Every container of the rendered objects: (object kind/name, container).
fn containers(objs: &[Value]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for o in objs {
        if let Some(cs) = o.pointer("/spec/template/spec/containers").and_then(Value::as_array) {
            let name = format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
            out.extend(cs.iter().map(|c| (name.clone(), c.clone())));
        }
    }
    out
}

fn object<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {kind}/{name}"))
}

#[test]
fn every_overlay_renders_validates_and_names_only_what_the_binary_knows() {
    let tmp = tempfile::tempdir().unwrap();
    let names = overlays();
    assert!(names.len() >= 2 && names.contains(&"cpu".to_string()) && names.contains(&"gpu".to_string()), "{names:?}");
    for overlay in names {
        let yaml = render(&overlay);
        let f = tmp.path().join(format!("{overlay}.yaml"));
        std::fs::write(&f, &yaml).unwrap();
        let out = Command::new(venv("kubernetes-validate")).args(["-k", KUBERNETES, "--strict"]).arg(&f).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && !text.contains("ERROR"), "{overlay} does not validate against Kubernetes {KUBERNETES}:\n{text}");
        let objs = objects(&yaml, tmp.path());
        let everyone: BTreeSet<String> = known_variables("coordinator").union(&known_variables("worker")).cloned().collect();
        for key in object(&objs, "ConfigMap", "jagged-config")["data"].as_object().unwrap().keys() {
            assert!(everyone.contains(key), "{overlay}: the ConfigMap sets {key}, which no jagged role reads");
        }
        for (what, c) in containers(&objs) {
            let cmd: Vec<&str> = c["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(cmd[0], "jagged", "{overlay} {what}");
            let role = cmd[1];
            let known = known_variables(role);
            for e in c["env"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap();
                assert!(known.contains(name), "{overlay} {what} sets {name}, which `jagged {role}` does not read");
            }
            // Flags: the binary parses them (an unknown one is an error) with --help.
            let mut args: Vec<String> = cmd[1..].iter().map(|s| s.to_string()).collect();
            args.extend(c["args"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()));
            args.push("--help".into());
            let out = Command::new(jagged_bin()).args(&args).output().unwrap();
            assert!(out.status.success(), "{overlay} {what}: `jagged {}` is refused: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        if overlay.starts_with("gpu") {
            let gpu = yaml.contains("nvidia.com/gpu: \"1\"") && yaml.contains("nvidia.com/gpu.present") && yaml.contains("key: nvidia.com/gpu");
            assert!(gpu, "{overlay}: GPU requests, node selector and toleration");
        }
    }
}

/// The value of an env entry, with the Secret and fieldRef filled in.
fn value(e: &Value, secrets: &BTreeMap<&str, String>, pod: &str) -> String {
    if let Some(v) = e["value"].as_str() {
        return v.to_string();
    }
    if let Some(key) = e.pointer("/valueFrom/secretKeyRef/key").and_then(Value::as_str) {
        return secrets.get(key).unwrap_or_else(|| panic!("the manifests read secret key {key}, which secret.example.yaml lacks")).clone();
    }
    if e.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) == Some("metadata.name") {
        return pod.to_string();
    }
    panic!("an env entry the test cannot fill: {e}")
}

#[test]
fn the_cpu_overlay_command_lines_run_a_sweep_and_the_keda_query_counts_queued_shards() {
    let w = jagged_testkit::Workload::new("kubernetes", 16, 4, 2, 16);
    let (dir, pg, store) = (w.dir(), &w.pg, &w.store);
    let objs = objects(&render("cpu"), dir);
    // The Secret the manifests expect (its example's keys), with this test's values.
    let example = objects(&std::fs::read_to_string(root().join("deploy/kubernetes/base/secret.example.yaml")).unwrap(), dir);
    let mut secrets: BTreeMap<&str, String> = BTreeMap::new();
    for k in example[0]["stringData"].as_object().unwrap().keys() {
        secrets.insert(k.as_str(), format!("test-{k}"));
    }
    secrets.insert("database-url", pg.url());
    let config: BTreeMap<String, String> = object(&objs, "ConfigMap", "jagged-config")["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    // What only a site knows: where the store is, and the addresses of pods.
    let site = |env: &mut BTreeMap<String, String>| {
        env.insert("JAGGED_STORE".into(), store.display().to_string());
    };
    let environment = |c: &Value, pod: &str| {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            assert_eq!(from.pointer("/configMapRef/name").and_then(Value::as_str), Some("jagged-config"));
            env.extend(config.clone());
        }
        for e in c["env"].as_array().into_iter().flatten() {
            env.insert(e["name"].as_str().unwrap().to_string(), value(e, &secrets, pod));
        }
        site(&mut env);
        env
    };
    let command = |c: &Value| -> Vec<String> {
        let mut a: Vec<String> = c["command"].as_array().unwrap()[1..].iter().map(|v| v.as_str().unwrap().to_string()).collect();
        a.extend(c["args"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_string()));
        a
    };

    // The coordinator replicas, each on a loopback port in place of the pod's.
    let coord = object(&objs, "Deployment", "jagged-coordinator");
    let replicas = coord["spec"]["replicas"].as_u64().unwrap() as usize;
    let c = &coord["spec"]["template"]["spec"]["containers"][0];
    let mut procs = Vec::new();
    let mut urls = Vec::new();
    for r in 0..replicas {
        let name = format!("coordinator-{r}");
        let mut args = command(c);
        let listen = args.iter().position(|a| a == "--listen").expect("the coordinator's --listen") + 1;
        assert_eq!(args[listen], "0.0.0.0:7070", "the pod listens on the Service's target port");
        args[listen] = "127.0.0.1:0".into();
        args.extend(["--addr-file".into(), dir.join(format!("{name}.addr")).display().to_string()]);
        let env: Vec<(String, String)> = environment(c, &name).into_iter().collect();
        procs.push(Proc::spawn(&name, &jagged_bin(), &args, &env, &dir.join(format!("{name}.log"))).unwrap());
        urls.push(jagged_testkit::coordinator_url(dir, &name));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects_store = jagged_artifacts::open_store(store.to_str().unwrap()).unwrap();
    // Submitted with the admin token the Secret holds.
    let token = || Some(jagged_proto::auth::Token::new(&secrets["admin-token"]).unwrap());
    let admin = jagged_client::ClientConfig::new(urls[0].clone()).with_token(token());
    let admin_b = jagged_client::ClientConfig::new(urls[1].clone()).with_token(token());
    let id = rt.block_on(jagged_client::submit(&admin, &dir.join("spec.toml"), objects_store.as_ref(), &Overrides::default())).unwrap().sweep_id;

    // KEDA's query, on our own tables: every shard waits before any worker runs.
    let keda = objects(&render("cpu-keda"), dir);
    let query = object(&keda, "ScaledObject", "jagged-worker")["spec"]["triggers"][0]["metadata"]["query"].as_str().unwrap().to_string();
    let count = |q: &str| -> i64 { rt.block_on(async { sqlx::query_scalar(q).fetch_one(&crate::util::db(&pg.url()).await).await.unwrap() }) };
    let total = rt.block_on(until_with(&admin_b, id, "status", |_| true)).total as i64;
    assert_eq!(count(&query), total, "the KEDA query counts the sweep's waiting shards");

    // The worker replicas, as a Service would spread them over the coordinators.
    let worker = object(&objs, "Deployment", "jagged-worker");
    let c = &worker["spec"]["template"]["spec"]["containers"][0];
    for r in 0..worker["spec"]["replicas"].as_u64().unwrap() as usize {
        let name = format!("jagged-worker-{r}");
        let mut env = environment(c, &name);
        assert_eq!(env.get("JAGGED_COORDINATOR").map(String::as_str), Some("http://jagged-coordinator:7070"));
        env.insert("JAGGED_COORDINATOR".into(), urls[r % urls.len()].clone());
        let env: Vec<(String, String)> = env.into_iter().collect();
        procs.push(Proc::spawn(&name, &jagged_bin(), &command(c), &env, &dir.join(format!("{name}.log"))).unwrap());
    }
    let st = rt.block_on(until_with(&admin_b, id, "the sweep to finish", |s| s.state != SweepState::Running));
    let logs =
        || (0..2).map(|r| std::fs::read_to_string(dir.join(format!("jagged-worker-{r}.log"))).unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert_eq!((st.state, st.done, st.failed), (SweepState::Done, st.total, 0), "{st:?}\n{}", logs());
    assert_eq!(count(&query), 0, "nothing waits once the sweep is done");
    for mut p in procs {
        p.terminate(std::time::Duration::from_secs(10));
    }
}
