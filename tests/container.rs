//! The image `deploy/container/build-offline.sh` assembles from the built
//! binary (no base image pulled): a coordinator and two workers as containers
//! (`podman run`, host network on loopback) complete a sweep against the
//! test's private PostgreSQL, as the image's non-root user.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_testkit::{jagged_bin, root, until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// podman with the settings these machines need (runc; no rlimits; cgroupfs).
struct Podman {
    conf: PathBuf,
    tag: String,
    names: Vec<String>,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf).args(["--runtime", "runc"]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "podman {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts a detached container of the image on the host network.
    fn start(&mut self, name: &str, mounts: &[&Path], args: &[&str]) {
        let name = format!("{name}-{}", std::process::id());
        let mut a: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone(), "--network".into(), "host".into()];
        for m in mounts {
            a.extend(["-v".into(), format!("{0}:{0}", m.display())]);
        }
        a.push(self.tag.clone());
        a.extend(args.iter().map(|s| s.to_string()));
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        self.names.push(name);
    }

    fn logs(&self) -> String {
        self.names.iter().map(|n| format!("--- {n}\n{}", String::from_utf8_lossy(&self.cmd().args(["logs", n]).output().unwrap().stderr))).collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.cmd().args(["rm", "-f", "-t", "5", n]).output();
        }
        let _ = self.cmd().args(["rmi", "-f", &self.tag]).output();
    }
}

#[test]
fn the_offline_image_runs_a_coordinator_and_two_workers_as_containers() {
    let root_user = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
    assert!(root_user, "the container test runs podman as root (CI does)");
    let w = jagged_testkit::Workload::new("container", 16, 4, 2, 16);
    let (dir, pg) = (w.dir(), &w.pg);
    use std::os::unix::fs::PermissionsExt;
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The image's user (10001) writes result parts and the coordinator's address.
    for d in [&w.store, &shared] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(dir.join("containers.conf"), "[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n").unwrap();
    let mut podman = Podman { conf: dir.join("containers.conf"), tag: format!("localhost/jagged-test:{}", std::process::id()), names: vec![] };

    let t = Instant::now();
    let out = Command::new("bash")
        .arg(root().join("deploy/container/build-offline.sh"))
        .args(["--binary", jagged_bin().to_str().unwrap(), "--tag", &podman.tag])
        .output()
        .unwrap();
    assert!(out.status.success(), "build-offline.sh: {}", String::from_utf8_lossy(&out.stderr));
    let size = podman.run(&["image", "inspect", "--format", "{{.Size}}", &podman.tag]);
    let user = podman.run(&["image", "inspect", "--format", "{{.Config.User}}", &podman.tag]);
    eprintln!("image {} built offline in {:.1} s: {} MB, user {user}", podman.tag, t.elapsed().as_secs_f64(), size.parse::<u64>().unwrap_or(0) >> 20);
    assert_eq!(user, "10001:10001", "the image runs as a non-root user");

    let addr = shared.join("coordinator.addr");
    podman.start(
        "jagged-coordinator",
        &[&shared],
        &["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--addr-file", addr.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&addr).map_or(true, |a| a.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the coordinator container did not come up:\n{}", podman.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{}", std::fs::read_to_string(&addr).unwrap().trim());
    let store = w.store.to_str().unwrap();
    for i in 0..2 {
        podman.start(
            &format!("jagged-worker-{i}"),
            &[&w.store],
            &["worker", "--coordinator", &url, "--store", store, "--threads", "1", "--name", &format!("container-{i}")],
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(store).unwrap();
    let id = rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &Overrides::default())).unwrap();
    let st = rt.block_on(until(&url, id, "the sweep to finish", |s| s.state != SweepState::Running));
    assert_eq!((st.state, st.done, st.failed, st.inferences_done), (SweepState::Done, st.total, 0, st.inferences_total), "{st:?}\n{}", podman.logs());
    let workers: i64 = rt.block_on(async {
        let db = crate::util::db(&pg.url()).await;
        sqlx::query_scalar(
            "select count(distinct w.name) from outputs o join workers w on w.id = o.worker_id where o.sweep_id = $1 and w.name like 'container-%'",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap()
    });
    eprintln!("sweep {id}: {} shards, {} inferences, committed by {workers} worker container(s)", st.total, st.inferences_done);
    assert!(workers >= 1, "{}", podman.logs());
}
