//! Who may call the coordinator: separate bearer tokens for workers and admin
//! clients, refused when missing or wrong, never written to logs; a coordinator
//! that would be reachable from other machines without tokens refuses to start.

use jagged_cli::cluster::{ClusterOptions, LocalCluster};
use jagged_cli::sweep;
use jagged_proto::auth::Token;
use jagged_testkit::{dataset, jagged_bin, ort, tiny_model};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A random token (hex of 16 bytes from the OS).
fn random_token() -> String {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `jagged <args>` with `envs`, for at most 60 s; returns (success, output).
fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(jagged_bin())
        .args(args)
        .env_remove("JAGGED_WORKER_TOKEN")
        .env_remove("JAGGED_ADMIN_TOKEN")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("jagged {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn tokens_keep_out_callers_who_do_not_belong() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_model(&dir.join("models"));
    dataset(&dir.join("data"), 3, 10, &[]);
    let spec =
        "name = \"auth\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n[[families]]\nkind = \"diagonal\"\nsteps = 3\n";
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let (worker_token, admin_token) = (random_token(), random_token());
    let env = vec![("JAGGED_WORKER_TOKEN".to_string(), worker_token.clone()), ("JAGGED_ADMIN_TOKEN".to_string(), admin_token.clone())];
    let opts =
        ClusterOptions { bin: jagged_bin(), dir: dir.join("run"), workers: 1, threads: 1, lease_ms: 10_000, heartbeat_ms: 500, store: None, env };
    let cluster = LocalCluster::start(opts).unwrap();
    let (url, store_url) = (cluster.url.clone(), cluster.store_url.clone());
    let admin = Token::new(&admin_token).unwrap();
    let as_worker = Token::new(&worker_token).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // No token, or the worker's token, on the admin service: refused.
        let e = sweep::list(&mut sweep::connect_with(&url, None).await.unwrap()).await.unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        let e = sweep::list(&mut sweep::connect_with(&url, Some(&as_worker)).await.unwrap()).await.unwrap_err();
        assert!(e.to_string().contains("wrong token"), "{e}");
        let objects = jagged_artifacts::open_store(&store_url).unwrap();
        let e = sweep::submit_as(&url, None, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        // The admin token works, and the cluster's workers (with the worker token) run the sweep.
        let r = sweep::submit_as(&url, Some(&admin), &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let mut c = sweep::connect_with(&url, Some(&admin)).await.unwrap();
        let t = Instant::now();
        loop {
            let s = sweep::status(&mut c, r.sweep_id).await.unwrap();
            if s.state == "done" {
                assert_eq!(s.done, s.total);
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the sweep did not finish: {s:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // A worker with no token, a wrong one, or the admin's is refused and exits.
    let worker = ["worker", "--coordinator", &url, "--store", &store_url, "--threads", "1", "--exit-when-idle", "2"];
    for (what, token) in [("no token", None), ("a wrong token", Some("not-the-token")), ("the admin token", Some(admin_token.as_str()))] {
        let envs: Vec<(&str, &str)> = token.map(|t| vec![("JAGGED_WORKER_TOKEN", t)]).unwrap_or_default();
        let (ok, out) = run(&worker, &envs);
        assert!(!ok && out.contains("token"), "a worker with {what} must be refused: {out}");
        assert!(!out.contains(&admin_token), "the token must not be printed");
    }
    // Tokens never reach the logs.
    for entry in std::fs::read_dir(dir.join("run/logs")).unwrap() {
        let p = entry.unwrap().path();
        let log = std::fs::read_to_string(&p).unwrap();
        assert!(!log.contains(&worker_token) && !log.contains(&admin_token), "{} holds a token", p.display());
    }
    // A coordinator reachable from other machines needs both tokens, and different ones.
    let pg = cluster.postgres.url();
    let (ok, out) = run(&["coordinator", "--listen", "0.0.0.0:0", "--database-url", &pg], &[]);
    assert!(!ok && out.contains("refusing to listen"), "{out}");
    let same = random_token();
    let (ok, out) =
        run(&["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg], &[("JAGGED_WORKER_TOKEN", &same), ("JAGGED_ADMIN_TOKEN", &same)]);
    assert!(!ok && out.contains("must differ") && !out.contains(&same), "{out}");
    cluster.stop();
}
