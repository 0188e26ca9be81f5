//! Who may call the coordinator: separate bearer tokens for workers and admin
//! clients, refused when missing or wrong, never written to logs; a coordinator
//! that would be reachable from other machines without tokens refuses to start.

use jagged_client::{Admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
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
    let env = vec![
        ("JAGGED_WORKER_TOKEN".to_string(), worker_token.clone()),
        ("JAGGED_ADMIN_TOKEN".to_string(), admin_token.clone()),
        ("JAGGED_MAX_MESSAGE_MB".to_string(), "1".to_string()),
    ];
    let opts = ClusterOptions { dir: dir.join("run"), env, ..Default::default() };
    let cluster = LocalCluster::start(opts).unwrap();
    let (url, store_url) = (cluster.url.clone(), cluster.store_url.clone());
    let admin = Token::new(&admin_token).unwrap();
    let as_worker = Token::new(&worker_token).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // No token, or the worker's token, on the admin service: refused.
        let anonymous = ClientConfig::new(url.clone());
        let e = Admin::connect(&anonymous).await.unwrap().list().await.unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        let e = Admin::connect(&anonymous.clone().with_token(Some(as_worker))).await.unwrap().list().await.unwrap_err();
        assert!(e.to_string().contains("wrong token"), "{e}");
        let objects = jagged_artifacts::open_store(&store_url).unwrap();
        let e = jagged_client::submit(&anonymous, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        // The admin token works, and the cluster's workers (with the worker token) run the sweep.
        let config = anonymous.clone().with_token(Some(admin));
        let r = jagged_client::submit(&config, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        // A message over the coordinator's limit (1 MiB here) is refused before it is read.
        let spec = jagged_proto::v1::SweepSpec { name: "x".repeat(2 << 20), ..Default::default() };
        let huge =
            jagged_proto::v1::SubmitRequest { sweep: Some(jagged_proto::v1::Sweep { spec: Some(spec), ..Default::default() }), ..Default::default() };
        let e = Admin::connect(&config).await.unwrap().raw().submit(huge).await.unwrap_err();
        assert!(matches!(e.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted), "{e:?}");
        let mut c = Admin::connect(&config).await.unwrap();
        let t = Instant::now();
        loop {
            let s = c.status(r.sweep_id).await.unwrap();
            if s.state == SweepState::Done {
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

/// Writes `token` (with a newline, as editors do) to `dir/name`; returns the path.
fn write_token(dir: &std::path::Path, name: &str, token: &str) -> String {
    std::fs::write(dir.join(name), format!("{token}\n")).unwrap();
    dir.join(name).display().to_string()
}

/// Writes a CA and a server certificate for 127.0.0.1 signed by it (openssl);
/// returns (ca.pem, server.pem, server.key).
fn certificates(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let sh = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is needed (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=jagged test CA"]);
    sh(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// gRPC over TLS: a coordinator with a certificate and tokens; the CLI and a
/// worker connect with `https://` and the CA, and run a sweep; plain HTTP and a
/// client trusting another CA are refused.
#[test]
fn grpc_over_tls_with_tokens_runs_a_sweep() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca, cert, key) = certificates(dir);
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = certificates(other.path());
    tiny_model(&dir.join("models"));
    dataset(&dir.join("data"), 2, 10, &[]);
    std::fs::write(
        dir.join("spec.toml"),
        "name = \"tls\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n[[families]]\nkind = \"diagonal\"\nsteps = 2\n",
    )
    .unwrap();
    let pg = jagged_local::LocalPostgres::start().unwrap();
    let (wt, at) = (random_token(), random_token());
    let addr_file = dir.join("addr");
    let mut coordinator = jagged_local::Proc::spawn(
        "coordinator",
        &jagged_bin(),
        &["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--addr-file", addr_file.to_str().unwrap()].map(String::from),
        &[
            ("JAGGED_TLS_CERT".into(), cert.display().to_string()),
            ("JAGGED_TLS_KEY".into(), key.display().to_string()),
            // Tokens from files this time.
            ("JAGGED_WORKER_TOKEN_FILE".into(), write_token(dir, "worker.token", &wt)),
            ("JAGGED_ADMIN_TOKEN_FILE".into(), write_token(dir, "admin.token", &at)),
        ],
        &dir.join("coordinator.log"),
    )
    .unwrap();
    let t = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if a.ends_with('\n') {
                break a.trim().to_string();
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30) && !coordinator.exited(), "coordinator did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let url = format!("https://{addr}");
    let store = dir.join("store").display().to_string();
    let ca_s = ca.display().to_string();
    let admin = [("JAGGED_TLS_CA", ca_s.as_str()), ("JAGGED_ADMIN_TOKEN", at.as_str())];
    // Refused: plain HTTP to the TLS port, a client trusting another CA.
    let (ok, out) = run(&["sweep", "list", "--coordinator", &format!("http://{addr}")], &[("JAGGED_ADMIN_TOKEN", &at)]);
    assert!(!ok, "plain HTTP must not get through: {out}");
    let other_s = other_ca.display().to_string();
    let (ok, out) = run(&["sweep", "list", "--coordinator", &url], &[("JAGGED_TLS_CA", &other_s), ("JAGGED_ADMIN_TOKEN", &at)]);
    assert!(!ok, "a certificate from another CA must be refused: {out}");
    // The sweep, over TLS.
    let (ok, out) = run(&["sweep", "submit", dir.join("spec.toml").to_str().unwrap(), "--coordinator", &url, "--store", &store], &admin);
    assert!(ok, "{out}\ncoordinator log:\n{}", std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default());
    let id = out.lines().next().unwrap().trim().to_string();
    let (ok, out) = run(
        &["worker", "--coordinator", &url, "--store", &store, "--threads", "1", "--exit-when-idle", "2"],
        &[("JAGGED_TLS_CA", ca_s.as_str()), ("JAGGED_WORKER_TOKEN", wt.as_str())],
    );
    assert!(ok, "worker over TLS: {out}");
    let (ok, out) = run(&["sweep", "status", &id, "--coordinator", &url], &admin);
    assert!(ok && out.contains("[done]") && out.contains("shards 1/1 done"), "{out}");
    coordinator.terminate(Duration::from_secs(5));
}
