//! Fair share across sweeps, model affinity and commits sent together, through
//! a coordinator over gRPC.

use jagged_coordinator::{serve, Auth, Config, Coordinator};
use jagged_proto::v1::admin_service_client::AdminServiceClient;
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use jagged_proto::v1::{CompleteManyRequest, CompleteRequest, LeaseRequest, RegisterRequest, ShardTask, StatusRequest, SubmitRequest};
use jagged_testkit::{resolved, store};
use tonic::transport::Channel;

const DIAGONAL: &str = "[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n";

/// A coordinator on a private PostgreSQL, serving on a loopback port.
async fn coordinator() -> (jagged_local::LocalPostgres, String, tokio::sync::oneshot::Sender<()>) {
    let (pg, store) = store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(Coordinator::new(store, Config::default()), listener, Auth::default(), None, async move {
        let _ = rx.await;
    }));
    (pg, url, tx)
}

async fn submit(url: &str, sweep: &jagged_domain::spec::ResolvedSweep) -> i64 {
    let mut admin = AdminServiceClient::connect(url.to_string()).await.unwrap();
    let req = SubmitRequest { sweep: Some(sweep.clone().into()), spec_toml: String::new(), again: true, prices: Default::default() };
    admin.submit(req).await.unwrap().into_inner().sweep_id
}

async fn worker(url: &str) -> (WorkerServiceClient<Channel>, i64) {
    let mut c = WorkerServiceClient::connect(url.to_string()).await.unwrap();
    let id = c.register(RegisterRequest { name: "t".into(), host: "t".into(), device: "cpu".into() }).await.unwrap().into_inner().worker_id;
    (c, id)
}

async fn lease(c: &mut WorkerServiceClient<Channel>, worker: i64, loaded: &[&str]) -> Option<ShardTask> {
    let req = LeaseRequest { worker_id: worker, max_shards: 1, loaded_models: loaded.iter().map(|s| s.to_string()).collect(), sweep_id: 0 };
    c.lease(req).await.unwrap().into_inner().shards.into_iter().next()
}

/// The object key of a task's model.
fn key(s: &ShardTask) -> String {
    s.model.as_ref().map(|m| m.key.clone()).unwrap_or_default()
}

async fn complete(c: &mut WorkerServiceClient<Channel>, worker: i64, s: &ShardTask) {
    c.complete(commit_of(worker, s)).await.unwrap();
}

/// A commit of `s` as a worker would send it.
fn commit_of(worker: i64, s: &ShardTask) -> CompleteRequest {
    CompleteRequest {
        worker_id: worker,
        shard_id: s.shard_id,
        lease_epoch: s.lease_epoch,
        object_key: jagged_domain::keys::part_key(s.sweep_id, s.shard_id, s.attempt, s.lease_epoch),
        rows: 2,
        sha256: "00".into(),
        execution_provider: "CPUExecutionProvider".into(),
        seconds: 0.01,
        model_key: key(s),
        ..Default::default()
    }
}

/// `CompleteMany` answers each commit as `Complete` would: a stale lease, a
/// part key other than the attempt's own, or the same commit twice refuses
/// only that commit; the rest are committed.
#[tokio::test]
async fn complete_many_answers_each_commit_on_its_own() {
    let (_pg, url, _stop) = coordinator().await;
    let id = submit(&url, &resolved(3, DIAGONAL, 1, 3)).await;
    let (mut c, w) = worker(&url).await;
    let req = LeaseRequest { worker_id: w, max_shards: 3, loaded_models: vec![], sweep_id: 0 };
    let t = c.lease(req).await.unwrap().into_inner().shards;
    assert_eq!(t.len(), 3);
    let stale = CompleteRequest { lease_epoch: t[1].lease_epoch + 1, ..commit_of(w, &t[1]) };
    let elsewhere = CompleteRequest { object_key: "parts/elsewhere.parquet".into(), ..commit_of(w, &t[2]) };
    let commits = vec![commit_of(w, &t[0]), stale, elsewhere, commit_of(w, &t[0])];
    let outcomes = c.complete_many(CompleteManyRequest { commits }).await.unwrap().into_inner().outcomes;
    let codes: Vec<tonic::Code> = outcomes.iter().map(|o| tonic::Code::from(o.code)).collect();
    assert_eq!(
        codes,
        [tonic::Code::Ok, tonic::Code::FailedPrecondition, tonic::Code::InvalidArgument, tonic::Code::FailedPrecondition],
        "{outcomes:?}"
    );
    assert!(outcomes[0].message.is_empty() && outcomes[2].message.contains("elsewhere"), "{outcomes:?}");
    let mut admin = AdminServiceClient::connect(url.clone()).await.unwrap();
    let status = |s: jagged_proto::v1::SweepStatus| (s.done, s.leased);
    assert_eq!(status(admin.status(StatusRequest { sweep_id: id }).await.unwrap().into_inner()), (1, 2));
    // The refused two still hold their leases: their own commits go through.
    let commits = vec![commit_of(w, &t[1]), commit_of(w, &t[2])];
    let outcomes = c.complete_many(CompleteManyRequest { commits }).await.unwrap().into_inner().outcomes;
    assert!(outcomes.iter().all(|o| o.code == 0), "{outcomes:?}");
    assert_eq!(status(admin.status(StatusRequest { sweep_id: id }).await.unwrap().into_inner()), (3, 0));
    // Too many in one call: refused as a whole.
    let commits = vec![commit_of(w, &t[0]); 1025];
    let e = c.complete_many(CompleteManyRequest { commits }).await.unwrap_err();
    assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("at most 1024"), "{e:?}");
}

#[tokio::test]
async fn concurrent_sweeps_share_workers_by_two_to_the_priority() {
    let (_pg, url, _stop) = coordinator().await;
    let low = submit(&url, &resolved(40, DIAGONAL, 1, 3)).await;
    let mut s = resolved(40, DIAGONAL, 1, 3);
    s.spec.priority = 1;
    s.images[0].name = "other.png".into(); // another sweep, not the same one again
    let high = submit(&url, &s).await;
    let (mut c, w) = worker(&url).await;
    let (mut n_low, mut n_high) = (0, 0);
    for _ in 0..30 {
        let t = lease(&mut c, w, &[]).await.expect("work left in both");
        if t.sweep_id == low {
            n_low += 1;
        } else {
            assert_eq!(t.sweep_id, high);
            n_high += 1;
        }
        complete(&mut c, w, &t).await;
    }
    // Weights 1 : 2 (equal shards): 10 : 20, give or take the first pick.
    assert!((9..=11).contains(&n_low) && (19..=21).contains(&n_high), "low {n_low}, high {n_high}");
    // A sweep submitted now gets its share from now on, not a catch-up burst.
    let mut s = resolved(40, DIAGONAL, 1, 3);
    s.images[0].name = "third.png".into();
    let third = submit(&url, &s).await;
    let mut n_third = 0;
    for _ in 0..20 {
        let t = lease(&mut c, w, &[]).await.unwrap();
        n_third += (t.sweep_id == third) as i32;
        complete(&mut c, w, &t).await;
    }
    // Weights 1 : 2 : 1 -> a quarter of 20.
    assert!((4..=6).contains(&n_third), "third {n_third}");
}

#[tokio::test]
async fn workers_get_shards_of_the_models_they_hold() {
    let (_pg, url, _stop) = coordinator().await;
    let mut s = resolved(4, DIAGONAL, 1, 3); // 4 shards per model
    let mut m = s.models[0].clone();
    m.key = "blobs/sha256/second".into();
    m.name = "second".into();
    s.models.push(m);
    s.spec.models.push(s.spec.models[0].clone());
    let (k0, k1) = (s.models[0].key.clone(), s.models[1].key.clone());
    submit(&url, &s).await;
    let (mut a, wa) = worker(&url).await;
    let (mut b, wb) = worker(&url).await;
    // A fresh worker starts on the first model; one holding the second stays on it.
    let t = lease(&mut a, wa, &[]).await.unwrap();
    assert_eq!(key(&t), k0);
    complete(&mut a, wa, &t).await;
    for _ in 0..4 {
        let t = lease(&mut b, wb, &[&k1]).await.unwrap();
        assert_eq!(key(&t), k1, "affinity");
        complete(&mut b, wb, &t).await;
    }
    for _ in 0..3 {
        let t = lease(&mut a, wa, &[&k0]).await.unwrap();
        assert_eq!(key(&t), k0);
        complete(&mut a, wa, &t).await;
    }
    // The second model is used up: a worker holding it gets the first's work
    // (none left here), then nothing.
    assert!(lease(&mut b, wb, &[&k1]).await.is_none());
}

#[tokio::test]
async fn shards_are_sized_from_the_measured_throughput_of_their_model() {
    let (_pg, url, _stop) = coordinator().await;
    let mut a = resolved(40, DIAGONAL, 1, 3);
    a.spec.shard.images = None;
    a.spec.shard.target_inferences = 8; // 4 images of 2 points: 10 shards
    let mut admin = AdminServiceClient::connect(url.clone()).await.unwrap();
    let req = SubmitRequest { sweep: Some(a.clone().into()), spec_toml: String::new(), again: true, prices: Default::default() };
    assert_eq!(admin.submit(req).await.unwrap().into_inner().shards, 10, "nothing measured yet: target_inferences");
    let (mut c, w) = worker(&url).await;
    while let Some(t) = lease(&mut c, w, &[]).await {
        complete(&mut c, w, &t).await; // 2 rows in 0.01 s each: 200 inferences/s
    }
    // Same model, more images: 30 s x 200/s / 2 points = 3000 images per shard.
    let mut b = resolved(7000, DIAGONAL, 1, 3);
    b.spec.shard.images = None;
    b.spec.shard.target_inferences = 8;
    let req = SubmitRequest { sweep: Some(b.clone().into()), spec_toml: String::new(), again: true, prices: Default::default() };
    assert_eq!(admin.submit(req).await.unwrap().into_inner().shards, 3);
    // An explicit size still wins.
    b.spec.shard.images = Some(1000);
    let req = SubmitRequest { sweep: Some(b.clone().into()), spec_toml: String::new(), again: true, prices: Default::default() };
    assert_eq!(admin.submit(req).await.unwrap().into_inner().shards, 7);
}

#[test]
fn one_worker_process_runs_several_sessions() {
    use jagged_local::{ClusterOptions, LocalCluster};
    jagged_testkit::ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    jagged_testkit::tiny_model(&dir.join("models"));
    jagged_testkit::dataset(&dir.join("data"), 12, 10, &[]);
    let spec = "name = \"sessions\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n\
                [[families]]\nkind = \"crop\"\nmax_shift = 3\n[shard]\nimages = 1\n";
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let opts = ClusterOptions {
        bin: jagged_testkit::jagged_bin(),
        dir: dir.join("run"),
        env: vec![("JAGGED_SESSIONS".into(), "2".into())],
        ..Default::default()
    };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (st, names) = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = jagged_testkit::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let st = jagged_testkit::wait(&cluster.url, id).await;
        let db = crate::util::db(&cluster.postgres.url()).await;
        let names: Vec<String> = sqlx::query_scalar("select name from workers order by name").fetch_all(&db).await.unwrap();
        (st, names)
    });
    cluster.stop();
    assert_eq!((st.state, st.done, st.failed), (jagged_domain::status::SweepState::Done, 12, 0));
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("-s0") && names[1].ends_with("-s1"), "{names:?}");
}

/// A worker service in front of a coordinator that holds every commit call
/// back for `delay` (so a worker's commits pile up behind it) and notes the
/// commits each call carried; with `many` false it answers `CompleteMany` as
/// a coordinator without that call does (UNIMPLEMENTED).
#[derive(Clone)]
struct SlowCommits {
    to: WorkerServiceClient<Channel>,
    many: bool,
    delay: std::time::Duration,
    /// ("one" | "many", commits carried) per call.
    calls: std::sync::Arc<std::sync::Mutex<Vec<(&'static str, usize)>>>,
}

#[tonic::async_trait]
impl jagged_proto::v1::worker_service_server::WorkerService for SlowCommits {
    async fn register(&self, r: tonic::Request<RegisterRequest>) -> Result<tonic::Response<jagged_proto::v1::RegisterResponse>, tonic::Status> {
        self.to.clone().register(r.into_inner()).await
    }
    async fn lease(&self, r: tonic::Request<LeaseRequest>) -> Result<tonic::Response<jagged_proto::v1::LeaseResponse>, tonic::Status> {
        self.to.clone().lease(r.into_inner()).await
    }
    async fn heartbeat(
        &self,
        r: tonic::Request<jagged_proto::v1::HeartbeatRequest>,
    ) -> Result<tonic::Response<jagged_proto::v1::HeartbeatResponse>, tonic::Status> {
        self.to.clone().heartbeat(r.into_inner()).await
    }
    async fn fail(&self, r: tonic::Request<jagged_proto::v1::FailRequest>) -> Result<tonic::Response<jagged_proto::v1::FailResponse>, tonic::Status> {
        self.to.clone().fail(r.into_inner()).await
    }
    async fn complete(&self, r: tonic::Request<CompleteRequest>) -> Result<tonic::Response<jagged_proto::v1::CompleteResponse>, tonic::Status> {
        self.calls.lock().unwrap().push(("one", 1));
        tokio::time::sleep(self.delay).await;
        self.to.clone().complete(r.into_inner()).await
    }
    async fn complete_many(
        &self,
        r: tonic::Request<jagged_proto::v1::CompleteManyRequest>,
    ) -> Result<tonic::Response<jagged_proto::v1::CompleteManyResponse>, tonic::Status> {
        self.calls.lock().unwrap().push(("many", r.get_ref().commits.len()));
        if !self.many {
            return Err(tonic::Status::unimplemented("unknown method CompleteMany"));
        }
        tokio::time::sleep(self.delay).await;
        self.to.clone().complete_many(r.into_inner()).await
    }
}

/// Starts `proxy` on a loopback port; returns its URL.
async fn serve_proxy(proxy: SlowCommits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tonic::transport::Server::builder().add_service(jagged_proto::v1::worker_service_server::WorkerServiceServer::new(proxy));
    tokio::spawn(server.serve_with_incoming(incoming));
    url
}

/// A worker whose commits wait on a slow coordinator sends those that became
/// ready meanwhile in one `CompleteMany` call; against a coordinator without
/// that call it commits one shard per `Complete`. Either way every shard is
/// committed once and every row is there once.
#[test]
fn ready_commits_go_together_or_one_per_call_to_an_older_coordinator() {
    use jagged_local::LocalCluster;
    jagged_testkit::ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    jagged_testkit::tiny_model(&dir.join("models"));
    jagged_testkit::dataset(&dir.join("data"), 24, 10, &[]);
    let spec = "name = \"commits\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n\
                [[families]]\nkind = \"crop\"\nmax_shift = 1\n[shard]\nimages = 1\n";
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let cluster = LocalCluster::start(jagged_testkit::cluster_options(&dir.join("run"), 0, 10_000)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
    for many in [true, false] {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (id, proxy_url) = rt.block_on(async {
            let to = WorkerServiceClient::connect(cluster.url.clone()).await.unwrap();
            let proxy = SlowCommits { to, many, delay: std::time::Duration::from_millis(150), calls: calls.clone() };
            let again = jagged_client::Overrides { again: true, ..Default::default() };
            let id = jagged_testkit::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &again).await.unwrap();
            (id, serve_proxy(proxy).await)
        });
        let (id_arg, store) = (id.to_string(), cluster.store_url.clone());
        let args =
            ["worker", "--coordinator", &proxy_url, "--store", &store, "--threads", "1", "--prefetch", "8", "--sweep", &id_arg].map(String::from);
        // The proxy runs on this runtime while the worker process works.
        let out = rt.block_on(async {
            let bin = jagged_testkit::jagged_bin();
            tokio::task::spawn_blocking(move || std::process::Command::new(bin).args(args).output().unwrap()).await.unwrap()
        });
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "worker failed: {log}");
        let (st, rows) = rt.block_on(async {
            let st = jagged_testkit::wait(&cluster.url, id).await;
            (st, jagged_testkit::committed(&cluster, objects.as_ref(), id).await.0)
        });
        assert_eq!((st.state, st.done, st.failed), (jagged_domain::status::SweepState::Done, 24, 0), "{log}");
        // 24 images x 9 crops, each row once.
        let keys: std::collections::BTreeSet<(i32, i32)> = rows.iter().map(|r| (r.image_index, r.point)).collect();
        assert_eq!((rows.len(), keys.len()), (24 * 9, 24 * 9));
        let calls = calls.lock().unwrap().clone();
        let carried = |kind: &str| calls.iter().filter(|c| c.0 == kind).map(|c| c.1).sum::<usize>();
        if many {
            // Commits went together, and each went out once.
            assert!(calls.iter().any(|&(kind, n)| kind == "many" && n > 1), "{calls:?}");
            assert_eq!(carried("many") + carried("one"), 24, "{calls:?}");
            assert!(calls.len() < 24, "{calls:?}");
        } else {
            // Asked once, then one shard per call.
            assert_eq!(calls.iter().filter(|c| c.0 == "many").count(), 1, "{calls:?}");
            assert_eq!(carried("one"), 24, "{calls:?}");
            assert!(log.contains("no CompleteMany"), "{log}");
        }
    }
    cluster.stop();
}
