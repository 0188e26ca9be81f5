//! Failures that must say what happened and never cost good work: a store that
//! will not take result parts (for a moment, then for good), a sweep whose
//! shards failed, and `jagged sweep retry` bringing it back with the report an
//! undisturbed run gives.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{dataset, jagged_bin, ort, until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A folder no one can create entries in until the guard is dropped: `chattr
/// +i` as root (whom permissions do not stop), read-only permissions otherwise.
struct Frozen(PathBuf);

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Frozen {
    fn new(dir: &Path) -> Frozen {
        std::fs::create_dir_all(dir).unwrap();
        if is_root() {
            let ok = Command::new("chattr").arg("+i").arg(dir).status().is_ok_and(|s| s.success());
            assert!(ok, "chattr +i {} failed (the test needs a filesystem with immutable attributes)", dir.display());
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        Frozen(dir.to_path_buf())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if is_root() {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// Whether any worker log has gained `text` since the offsets in `from`.
fn logged_since(logs: &[PathBuf], from: &[usize], text: &str) -> bool {
    logs.iter().zip(from).any(|(l, &f)| std::fs::read_to_string(l).is_ok_and(|t| t.get(f..).is_some_and(|t| t.contains(text))))
}

/// Writes the model (`models/tiny64.onnx` with its card) and the 16 images
/// (`data/`) the failure tests' spec names.
fn inputs(dir: &Path) {
    jagged_testkit::tiny_side(dir, 64);
    dataset(&dir.join("data"), 16, 4, &[]);
}

/// Runs the `jagged` binary as a user would; returns (success, stdout + stderr).
fn jagged(args: &[&str]) -> (bool, String) {
    let out = Command::new(jagged_bin()).args(args).env("NO_COLOR", "1").output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_unwritable_store_is_waited_out_or_reported_with_its_cause_and_retry_keeps_committed_work() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    std::fs::write(dir.join("spec.toml"), jagged_testkit::crop_spec("failures", 6, 2, 16)).unwrap();
    let opts = ClusterOptions {
        dir: dir.join("run"),
        workers: 2,
        lease_ms: 5_000,
        // A write is retried for 3 s before the attempt counts as failed.
        env: vec![("JAGGED_STORE_RETRY_SECS".into(), "3".into())],
        ..Default::default()
    };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, pg) = (cluster.url.clone(), cluster.postgres.url());
    let store_dir = PathBuf::from(&cluster.store_url);
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let submit = || rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();
    let report = |id| {
        rt.block_on(async {
            let store = jagged_store::Store::connect(&pg, 1).await.unwrap();
            jagged_report::build(&store, objects.as_ref(), id).await.unwrap().csv()
        })
    };
    let logs: Vec<_> = (0..2).map(|i| dir.join(format!("run/logs/worker-{i}.log"))).collect();
    let offsets = || logs.iter().map(|l| std::fs::metadata(l).map(|m| m.len() as usize).unwrap_or(0)).collect::<Vec<_>>();

    let reference_id = submit();
    let done = rt.block_on(until(&url, reference_id, "the reference run", |s| s.state != SweepState::Running));
    assert_eq!((done.state, done.done, done.failed), (SweepState::Done, 8, 0), "{done:?}");
    let reference = report(reference_id);

    // For a moment, mid-sweep: the workers wait the store out; nothing fails.
    let from = offsets();
    let id = submit();
    let s = rt.block_on(until(&url, id, "progress", |s| s.done >= 2));
    assert_eq!(s.state, SweepState::Running, "the sweep finished before the damage: make it longer");
    let frozen = Frozen::new(&store_dir.join(format!("sweeps/{id}/parts")));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logged_since(&logs, &from, "the store did not take the result part; retrying") {
        assert!(Instant::now() < deadline, "no worker met the unwritable store");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(frozen);
    let st = rt.block_on(until(&url, id, "the sweep to finish", |s| s.state != SweepState::Running));
    assert_eq!((st.state, st.done, st.failed, st.inferences_done, st.inferences_failed), (SweepState::Done, 8, 0, st.inferences_total, 0), "{st:?}");
    assert_eq!(report(id), reference, "a store outage changed the results");

    // For good: every attempt fails with the store's own error, the sweep ends
    // `failed` (a non-zero exit), and `sweep retry` after the repair completes it.
    let frozen = Frozen::new(&store_dir.join("sweeps"));
    let id = submit();
    let st = rt.block_on(until(&url, id, "the sweep to fail", |s| s.state != SweepState::Running));
    assert_eq!(
        (st.state, st.failed, st.done, st.inferences_done, st.inferences_failed),
        (SweepState::Failed, 8, 0, 0, st.inferences_total),
        "{st:?}"
    );
    assert!(!st.errors.is_empty());
    for e in &st.errors {
        assert!(e.error.starts_with("writing the result part `sweeps/"), "{e:?}");
        assert!(e.error.contains("Operation not permitted") || e.error.contains("Permission denied"), "the store's own error: {e:?}");
    }
    let (ok, text) = jagged(&["sweep", "status", &id.to_string(), "--watch", "--coordinator", &url]);
    eprintln!("$ jagged sweep status {id} --watch\n{text}");
    assert!(!ok, "a failed sweep is a non-zero exit:\n{text}");
    assert!(text.contains("[failed]") && text.contains(&format!("jagged sweep retry {id}")), "{text}");
    assert!(text.contains("Operation not permitted") || text.contains("Permission denied"), "{text}");

    // Retrying while it is still broken fails again, for one shard only.
    let shard = st.errors[0].shard_id;
    let (ok, text) = jagged(&["sweep", "retry", &id.to_string(), "--shard", &shard.to_string(), "--wait", "--coordinator", &url]);
    assert!(!ok && text.contains(&format!("requeued 1 shard(s) of sweep {id}: {shard}")), "{text}");
    drop(frozen);
    let (ok, text) = jagged(&["sweep", "retry", &id.to_string(), "--wait", "--coordinator", &url]);
    eprintln!("$ jagged sweep retry {id} --wait\n{text}");
    assert!(ok, "{text}");
    assert!(text.contains("requeued 8 shard(s)") && text.contains("[done]"), "{text}");
    let st = rt.block_on(until(&url, id, "status", |_| true));
    assert_eq!((st.state, st.done, st.failed, st.inferences_done, st.inferences_failed), (SweepState::Done, 8, 0, st.inferences_total, 0), "{st:?}");
    assert_eq!(report(id), reference, "a retried sweep changed the results");
    let (ok, text) = jagged(&["sweep", "retry", &id.to_string(), "--coordinator", &url]);
    assert!(!ok && text.contains(&format!("sweep `{id}` has no failed shards")), "{text}");
    cluster.stop();
}

/// Drops ANSI escape sequences (`ESC [ ... letter`) from terminal output.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn watching_fits_an_80_column_terminal_and_prints_plain_lines_elsewhere() {
    ort();
    if Command::new("script").arg("--version").output().is_err() {
        panic!("`script` (util-linux) is needed to run a command in a pseudo-terminal");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    inputs(dir);
    // A long name makes every full status line far wider than 80 columns.
    let name = format!("a sweep with a long descriptive name {}", "x".repeat(120));
    std::fs::write(dir.join("spec.toml"), jagged_testkit::crop_spec(&name, 6, 2, 16)).unwrap();
    let opts = ClusterOptions { dir: dir.join("run"), workers: 0, lease_ms: 5_000, ..Default::default() };
    let mut cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = cluster.url.clone();
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    let id = rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &Overrides::default())).unwrap();

    // Watched in an 80-column pseudo-terminal: queued with no worker for a
    // while (the bar is drawn), then run to the end.
    let cmd = format!("stty cols 80 rows 24; exec {} sweep status {id} --watch --coordinator {url}", jagged_bin().display());
    let mut watcher = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = crate::util::Captured::new(watcher.stdout.take().unwrap());
    let stderr = crate::util::Captured::new(watcher.stderr.take().unwrap());
    let queued = format!("sweep {id} ");
    stdout.wait_for("the bar of the queued sweep", Duration::from_secs(30), |t| {
        let screen = strip_ansi(t);
        screen.contains(&queued) && screen.contains("shards 0/8")
    });
    cluster.add_worker(0).unwrap();
    let status = watcher.wait().unwrap();
    let raw = stdout.finish();
    assert!(status.success(), "{raw}\n{}", stderr.finish());
    let screen = strip_ansi(&raw);
    let lines: Vec<&str> = screen.split(['\n', '\r']).filter(|l| !l.is_empty()).collect();
    eprintln!("what an 80-column terminal showed:\n{}", lines.join("\n"));
    for l in &lines {
        assert!(l.chars().count() <= 80, "{} columns: {l:?}", l.chars().count());
    }
    let bar = format!("sweep {id} ");
    assert!(
        lines.iter().any(|l| l.starts_with(&bar) && l.contains("% shards 0/8") && l.contains("0 workers")),
        "no progress bar while queued: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with(&format!("sweep {id} [done]"))), "no final status: {lines:?}");
    assert!(screen.contains("xxxxxxxx"), "the final status keeps the whole name, broken over lines: {lines:?}");

    // Off a terminal: plain lines, the final one once.
    let (ok, text) = jagged(&["sweep", "status", &id.to_string(), "--watch", "--coordinator", &url]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("[done]").count(), 1, "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    cluster.stop();
}

/// A dataset where nothing can be decoded gives no result at all: the sweep
/// ends `failed` (and `--wait` exits non-zero), saying so and why, its failed
/// items grouped by reason with an example each; a sweep where some items fail
/// ends `done` and says the same of those.
#[test]
fn a_sweep_with_no_result_fails_and_its_failed_items_are_grouped_by_reason() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    jagged_testkit::tiny_side(dir, 64);
    let bad: [(&str, &[u8], Option<i32>); 3] = [("a.png", b"not an image", Some(1)), ("b.jpg", b"", Some(2)), ("c.png", b"nor this", Some(3))];
    dataset(&dir.join("data"), 0, 4, &bad);
    dataset(&dir.join("mixed"), 4, 4, &bad[1..2]);
    std::fs::write(dir.join("spec.toml"), jagged_testkit::crop_spec("undecodable", 2, 4, 16)).unwrap();
    let mixed = jagged_testkit::crop_spec("mixed", 2, 4, 16).replace("path = \"data\"", "path = \"mixed\"");
    std::fs::write(dir.join("mixed.toml"), mixed).unwrap();
    let cluster = LocalCluster::start(ClusterOptions { dir: dir.join("run"), workers: 1, ..Default::default() }).unwrap();
    let submit = |spec: &str| {
        let spec = dir.join(spec);
        jagged(&["sweep", "submit", spec.to_str().unwrap(), "--wait", "--coordinator", &cluster.url, "--store", &cluster.store_url])
    };
    let (ok, text) = submit("spec.toml");
    eprintln!("$ jagged sweep submit spec.toml --wait\n{text}");
    assert!(!ok, "a sweep with no result must not succeed: {text}");
    assert!(text.contains("[failed] undecodable") && text.contains("inferences 0/"), "{text}");
    assert!(text.contains("  no result: none of the "), "{text}");
    assert!(text.contains("  2 items failed: ") && text.contains("unknown signature) (e.g. a.png)"), "{text}");
    assert!(text.contains("  1 item failed: ") && text.contains("empty file (0 bytes) (e.g. b.jpg)"), "{text}");
    // Its report says what it is a report of.
    let id = text.split("submitted sweep ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_string();
    let out = dir.join("report");
    let pg = cluster.postgres.url();
    let (_, text) = jagged(&["report", &id, "--database-url", &pg, "--store", &cluster.store_url, "--out", out.to_str().unwrap()]);
    assert!(text.contains(&format!("report written to {} (sweep {id} is failed)", out.display())), "{text}");

    let (ok, text) = submit("mixed.toml");
    eprintln!("$ jagged sweep submit mixed.toml --wait\n{text}");
    assert!(ok && text.contains("[done] mixed") && text.contains("failed items 1"), "{text}");
    assert!(text.contains("  1 item failed: ") && text.contains("empty file (0 bytes) (e.g. b.jpg)") && !text.contains("no result"), "{text}");
    cluster.stop();
}
