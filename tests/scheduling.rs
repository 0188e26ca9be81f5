//! Fair share across sweeps and model affinity, through a coordinator over gRPC.

use jagged_coordinator::{serve, Auth, Config, Coordinator};
use jagged_proto::v1::admin_service_client::AdminServiceClient;
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use jagged_proto::v1::{CompleteRequest, LeaseRequest, RegisterRequest, ShardTask, SubmitRequest};
use jagged_testkit::{resolved, store};
use tonic::transport::Channel;

const DIAGONAL: &str = "[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n";

/// A coordinator on a private PostgreSQL, serving on a loopback port.
async fn coordinator() -> (jagged_local::LocalPostgres, String, tokio::sync::oneshot::Sender<()>) {
    let (pg, store) = store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(Coordinator::new(store, Config::default()), listener, Auth::default(), None, Default::default(), async move {
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
    c.complete(CompleteRequest {
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
    })
    .await
    .unwrap();
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
        coordinator_args: vec![],
        bin: jagged_testkit::jagged_bin(),
        dir: dir.join("run"),
        workers: 1,
        threads: 1,
        lease_ms: 10_000,
        heartbeat_ms: 500,
        store: None,
        env: vec![("JAGGED_SESSIONS".into(), "2".into())],
    };
    let cluster = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (st, names) = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cluster.store_url).unwrap();
        let id = jagged_testkit::submit(&cluster.url, &dir.join("spec.toml"), objects.as_ref(), &Default::default()).await.unwrap();
        let st = jagged_testkit::wait(&cluster.url, id).await;
        let store = jagged_store::Store::connect(&cluster.postgres.url(), 2).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar("select name from workers order by name").fetch_all(store.pool()).await.unwrap();
        (st, names)
    });
    cluster.stop();
    assert_eq!((st.state, st.done, st.failed), (jagged_domain::status::SweepState::Done, 12, 0));
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("-s0") && names[1].ends_with("-s1"), "{names:?}");
}
