//! Several coordinators at once against one PostgreSQL: workers split between
//! two coordinators, one killed with SIGKILL mid-sweep; the survivor's reaper
//! requeues what the orphaned workers held, and the report is byte-identical
//! to an undisturbed run's, every shard committed once.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_local::Proc;
use jagged_testkit::{coordinator, coordinator_url, jagged_bin, until};
use std::time::Duration;

#[test]
fn two_coordinators_share_the_work_and_one_killed_mid_sweep_loses_nothing() {
    let w = jagged_testkit::Workload::new("ha", 48, 12, 2, 16);
    let (dir, pg, store) = (w.dir(), &w.pg, &w.store);
    let mut a = coordinator(&pg.url(), dir, "a");
    let _b = coordinator(&pg.url(), dir, "b");
    let (url_a, url_b) = (coordinator_url(dir, "a"), coordinator_url(dir, "b"));
    // Workers 0 and 1 talk to coordinator a, 2 and 3 to b.
    let mut workers: Vec<Proc> = (0..4)
        .map(|i| {
            let url = if i < 2 { &url_a } else { &url_b };
            let args: Vec<String> =
                ["worker", "--coordinator", url, "--store", store.to_str().unwrap(), "--threads", "1", "--name", &format!("w{i}")]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            Proc::spawn(&format!("w{i}"), &jagged_bin(), &args, &[], &dir.join(format!("w{i}.log"))).unwrap()
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(store.to_str().unwrap()).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let report = |id: i64, url: &str| {
        rt.block_on(async {
            let st = until(url, id, "the sweep to finish", |s| s.state != SweepState::Running).await;
            let s = jagged_store::Store::connect(&pg.url(), 1).await.unwrap();
            let outputs = s.outputs(id).await.unwrap();
            assert_eq!(
                (st.state, st.done, st.failed, outputs.len() as u32),
                (SweepState::Done, st.total, 0, st.total),
                "every shard committed once: {st:?}"
            );
            let committers: i64 = sqlx::query_scalar("select count(distinct worker_id) from outputs where sweep_id = $1")
                .bind(id)
                .fetch_one(&crate::util::db(&pg.url()).await)
                .await
                .unwrap();
            (jagged_report::build(&s, objects.as_ref(), id).await.unwrap().csv(), committers)
        })
    };

    // Undisturbed, submitted through a and watched through b, once all four
    // workers have registered (a slow start on a loaded machine would leave one
    // nothing to do).
    rt.block_on(async {
        let db = crate::util::db(&pg.url()).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let n: i64 = sqlx::query_scalar("select count(*) from workers").fetch_one(&db).await.unwrap();
            if n >= 4 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{n} of 4 workers registered within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let reference = rt.block_on(jagged_testkit::submit(&url_a, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();
    let (reference, committers) = report(reference, &url_b);
    assert_eq!(committers, 4, "all four workers, through both coordinators, committed shards");

    // Coordinator a killed mid-sweep and left dead: its workers keep retrying,
    // their leases expire, and b's reaper hands the shards to b's workers.
    let id = rt.block_on(jagged_testkit::submit(&url_a, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();
    let s = rt.block_on(until(&url_b, id, "progress", |s| s.done >= s.total / 4));
    assert_eq!(s.state, SweepState::Running, "the sweep finished before the damage: make it longer");
    a.kill9();
    let (csv, _) = report(id, &url_b);
    eprintln!("coordinator a killed at {}/{} shards; the sweep finished through b with an identical report", s.done, s.total);
    assert!(csv == reference, "the report differs from the undisturbed run:\n{csv}\nvs\n{reference}");
    for w in &mut workers {
        w.terminate(Duration::from_secs(10));
    }
}

/// The standard gRPC health service, without a token even when tokens are
/// required: the server is ready while PostgreSQL answers, and its services
/// live while the process runs.
#[test]
fn health_says_ready_while_postgres_answers_and_live_while_the_process_runs() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut pg = jagged_local::LocalPostgres::start().unwrap();
    let env = [("JAGGED_WORKER_TOKEN".to_string(), "w-secret".to_string()), ("JAGGED_ADMIN_TOKEN".to_string(), "a-secret".to_string())];
    let args: Vec<String> = ["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--addr-file"]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.join("h.addr").display().to_string()])
        .collect();
    let _c = Proc::spawn("h", &jagged_bin(), &args, &env, &dir.join("h.log")).unwrap();
    let url = coordinator_url(dir, "h");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let check = |service: &str| -> ServingStatus {
        rt.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
            let mut c = HealthClient::new(channel);
            let r = c.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
            ServingStatus::try_from(r.status).unwrap()
        })
    };
    let wait_for = |service: &str, want: ServingStatus| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while check(service) != want {
            assert!(std::time::Instant::now() < deadline, "service {service:?} never became {want:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("", ServingStatus::Serving);
    assert_eq!(check("jagged.v1.WorkerService"), ServingStatus::Serving);
    assert_eq!(check("jagged.v1.AdminService"), ServingStatus::Serving);
    pg.stop();
    wait_for("", ServingStatus::NotServing);
    assert_eq!(check("jagged.v1.WorkerService"), ServingStatus::Serving, "alive without PostgreSQL: not restarted for it");
    pg.restart().unwrap();
    wait_for("", ServingStatus::Serving);
    let log = std::fs::read_to_string(dir.join("h.log")).unwrap();
    assert!(log.contains("readiness changed"), "{log}");
}
