//! A failure storm, with the coordinator's default poison rule: every worker
//! killed with SIGKILL and restarted at random (each, once it holds a shard,
//! lives a second on average, about as long as a shard takes), the
//! coordinator killed twice and PostgreSQL stopped once. Shards are lost on
//! several different workers in a row by chance, yet none fails: the rest of
//! the fleet vanished as often, so nothing is put down to a shard. The sweep
//! ends `done` with the report of an undisturbed run, byte for byte; a shard
//! that kills every worker taking it still fails (tests/preemption.rs).

use crate::faults::finish;
use jagged_client::{Admin, ClientConfig, Overrides};
use jagged_domain::rng::SplitMix;
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_testkit::{dataset, ort, until};
use std::time::{Duration, Instant};

/// Shards of about a second on one ONNX Runtime thread (15 images of a 17 x 17
/// crop grid), a few times as long as a worker takes to start.
const SPEC: &str = r#"
name = "storm"
[dataset]
path = "data"
[[models]]
path = "models/tiny96.onnx"
[[families]]
kind = "crop"
max_shift = 8
[shard]
images = 15
[run]
batch_size = 32
"#;

/// Whether the newest worker named `name` holds a shard.
async fn working(db: &sqlx::PgPool, name: &str) -> bool {
    sqlx::query_scalar(
        "select exists (select 1 from shards s where s.state = 'leased' and s.worker_id = (select max(id) from workers where name = $1))",
    )
    .bind(name)
    .fetch_one(db)
    .await
    .unwrap_or(false)
}

/// The sweep's status, if the coordinator answers.
fn status(rt: &tokio::runtime::Runtime, url: &str, id: i64) -> Option<jagged_domain::status::SweepStatus> {
    rt.block_on(async { Admin::connect(&ClientConfig::new(url.to_string())).await.ok()?.status(id).await.ok() })
}

#[test]
fn a_failure_storm_is_not_a_poison_shard() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    jagged_testkit::tiny_side(dir, 96);
    dataset(&dir.join("data"), 360, 10, &[]);
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let opts = ClusterOptions { dir: dir.join("run"), workers: 3, lease_ms: 1500, heartbeat_ms: 300, ..Default::default() };
    let mut c = LocalCluster::start(opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = c.postgres.url();
    let objects = jagged_artifacts::open_store(&c.store_url).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let spec = dir.join("spec.toml");

    let started = Instant::now();
    let reference_id = rt.block_on(jagged_testkit::submit(&c.url, &spec, objects.as_ref(), &again)).unwrap();
    let reference = rt.block_on(finish(&c.url, &pg, objects.as_ref(), reference_id));
    let total = rt.block_on(until(&c.url, reference_id, "status", |_| true)).total;
    eprintln!("undisturbed: {total} shards in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let id = rt.block_on(jagged_testkit::submit(&c.url, &spec, objects.as_ref(), &again)).unwrap();
    // Each worker, once it holds a shard, lives an exponential time of a second
    // on average: a shard is lost about every other attempt, and on three
    // workers in a row several times a sweep.
    let mut rng = SplitMix(34);
    let life = |rng: &mut SplitMix| {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
        Instant::now() + Duration::from_secs_f64(-(1.0 - u).ln())
    };
    let db = rt.block_on(crate::util::db(&pg));
    let mut death: Vec<Option<Instant>> = vec![None; 3];
    let (mut kills, mut coordinator_kills, mut postgres_stopped) = (0, 0, false);
    let (mut done, mut asked) = (0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if asked.elapsed() >= Duration::from_millis(200) {
            asked = Instant::now();
            if let Some(s) = status(&rt, &c.url, id) {
                if s.state != SweepState::Running {
                    break;
                }
                done = s.done;
            }
        }
        assert!(Instant::now() < deadline, "the storm never ended: {done} of {total} shards done");
        std::thread::sleep(Duration::from_millis(20));
        for (i, at) in death.iter_mut().enumerate() {
            match at {
                None if rt.block_on(working(&db, &format!("worker-{i}"))) => *at = Some(life(&mut rng)),
                Some(t) if Instant::now() >= *t => {
                    c.workers[i].kill9();
                    c.add_worker(i).unwrap();
                    kills += 1;
                    *at = None;
                }
                _ => {}
            }
        }
        let progress = done as f64 / total as f64;
        if (coordinator_kills == 0 && progress >= 0.2) || (coordinator_kills == 1 && progress >= 0.6) {
            c.restart_coordinator().unwrap();
            coordinator_kills += 1;
        } else if !postgres_stopped && progress >= 0.4 {
            c.postgres.stop();
            std::thread::sleep(Duration::from_secs(2));
            c.postgres.restart().unwrap();
            postgres_stopped = true;
        }
    }
    let shards = rt.block_on(crate::preemption::shards(&pg, id));
    let failed: Vec<String> = shards.iter().filter(|s| s.state == "failed").map(|s| format!("shard {}: {:?}", s.id, s.last_error)).collect();
    assert!(failed.is_empty(), "the storm failed shards as poison ({kills} kills):\n{}", failed.join("\n"));
    let lost: i32 = shards.iter().map(|s| s.lost).sum();
    // Runs of workers that vanished holding a shard, one after another (each a
    // new registration): three or more failed a shard before fleet losses counted.
    let (runs, longest): (i64, i32) = rt
        .block_on(
            sqlx::query_as(
                "select count(*) filter (where cardinality(lost_by) >= 3), coalesce(max(cardinality(lost_by)), 0) from shards where sweep_id = $1",
            )
            .bind(id)
            .fetch_one(&rt.block_on(crate::util::db(&pg))),
        )
        .unwrap();
    eprintln!(
        "storm: {kills} worker kills, {coordinator_kills} coordinator kills, PostgreSQL stopped once; {lost} leases lost; \
         {runs} shard(s) lost on 3+ workers in a row (longest {longest}), none put down to the shard; done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(coordinator_kills == 2 && postgres_stopped, "the sweep ended before the storm's outages: make it longer");
    assert!(lost as usize >= total as usize / 4, "the storm hardly touched the sweep ({lost} leases lost of {total} shards): make it fiercer");
    let csv = rt.block_on(finish(&c.url, &pg, objects.as_ref(), id));
    assert!(csv == reference, "the report differs from the undisturbed run:\n{csv}\nvs\n{reference}");
    c.stop();
}
