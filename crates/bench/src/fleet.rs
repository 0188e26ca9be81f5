//! `jagged-bench fleet`: a GPU cluster's worth of workers against two
//! coordinator processes and one PostgreSQL on this machine. Each simulated
//! worker is a task of this process with its own gRPC connection, registering,
//! heartbeating at the production interval, and leasing, holding (for a shard
//! time drawn around `--shard-secs`) and committing shards as a worker does,
//! polling every 200 ms when idle. No inference runs: this measures what the
//! design's connection counts, heartbeat writes, reaper scans and fair share do
//! at that size.

use anyhow::{bail, Context, Result};
use jagged_client::{Admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use jagged_proto::v1::{HeartbeatRequest, HeldShard, LeaseRequest, RegisterRequest};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HEARTBEAT: Duration = Duration::from_secs(5);
const IDLE_POLL: Duration = Duration::from_millis(200);

fn quantile(v: &mut [Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

/// Peak and current resident memory of a process, from /proc.
fn memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string()).unwrap_or_else(|| "?".into());
    format!("peak {}, now {}", kb("VmHWM:"), kb("VmRSS:"))
}

#[derive(Default)]
struct Tally {
    leases: Mutex<Vec<Duration>>,
    commits: Mutex<Vec<Duration>>,
    heartbeats: AtomicU64,
    heartbeat_times: Mutex<Vec<Duration>>,
    committed: AtomicU64,
    stale: AtomicU64,
    empty: AtomicU64,
}

async fn worker(url: String, i: usize, shard_secs: f64, tally: Arc<Tally>, done: Arc<tokio::sync::Notify>) -> Result<()> {
    let ch = jagged_proto::transport::endpoint(&url, None).map_err(anyhow::Error::msg)?.tcp_nodelay(true).connect().await?;
    let mut c = WorkerServiceClient::new(ch);
    let id = c.register(RegisterRequest { name: format!("fleet-{i}"), host: "fleet".into(), device: "cuda".into() }).await?.into_inner().worker_id;
    let held: Arc<Mutex<Option<(i64, i64)>>> = Default::default();
    // Heartbeats at the production interval, first ones spread over it.
    let hb = {
        let (mut c, held, tally) = (c.clone(), held.clone(), tally.clone());
        tokio::spawn(async move {
            tokio::time::sleep(HEARTBEAT.mul_f64((i % 1000) as f64 / 1000.0)).await;
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let h: Vec<HeldShard> =
                    held.lock().unwrap().iter().map(|&(shard_id, lease_epoch)| HeldShard { shard_id, lease_epoch, busy_seconds: 0.0 }).collect();
                let t = Instant::now();
                if c.heartbeat(HeartbeatRequest { worker_id: id, held: h, leaving: false }).await.is_ok() {
                    tally.heartbeats.fetch_add(1, Ordering::Relaxed);
                    tally.heartbeat_times.lock().unwrap().push(t.elapsed());
                }
            }
        })
    };
    // A deterministic spread of shard times around the mean: 0.5x .. 1.5x.
    let mut k = i as u64;
    loop {
        let t = Instant::now();
        let shards = c.lease(LeaseRequest { worker_id: id, max_shards: 1, loaded_models: vec![], sweep_id: 0 }).await?.into_inner().shards;
        tally.leases.lock().unwrap().push(t.elapsed());
        let Some(s) = shards.into_iter().next() else {
            tally.empty.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => continue,
                _ = done.notified() => break,
            }
        };
        *held.lock().unwrap() = Some((s.shard_id, s.lease_epoch));
        k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let f = 0.5 + (k >> 33) as f64 / (1u64 << 31) as f64;
        tokio::time::sleep(Duration::from_secs_f64(shard_secs * f)).await;
        let t = Instant::now();
        let r = c.complete(crate::scheduler::commit_of(id, s, "CUDAExecutionProvider", shard_secs * f)).await;
        tally.commits.lock().unwrap().push(t.elapsed());
        *held.lock().unwrap() = None;
        match r {
            Ok(_) => tally.committed.fetch_add(1, Ordering::Relaxed),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => tally.stale.fetch_add(1, Ordering::Relaxed),
            Err(s) => return Err(s.into()),
        };
    }
    hb.abort();
    Ok(())
}

pub fn run(workers: usize, shards: u32, shard_secs: f64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("jagged-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let pg = jagged_local::LocalPostgres::start()?;
    // Two coordinators at production lease and heartbeat settings.
    let mut coords = Vec::new();
    let mut urls = Vec::new();
    for name in ["a", "b"] {
        let addr = dir.join(format!("{name}.addr"));
        let args: Vec<String> = ["coordinator", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--addr-file", addr.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = [("JAGGED_LOG".to_string(), "warn".to_string())];
        coords.push(jagged_local::Proc::spawn(name, &bin, &args, &env, &dir.join(format!("{name}.log")))?);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&addr).map_or(true, |a| a.trim().is_empty()) {
            if Instant::now() > deadline {
                bail!("coordinator {name} did not start: {}", std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        urls.push(format!("http://{}", std::fs::read_to_string(&addr)?.trim()));
    }
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let sweep = jagged_testkit::resolved(shards.div_ceil(10) as usize, &"[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n".repeat(10), 1, 3);
        let mut admin = Admin::connect(&ClientConfig::new(urls[0].clone())).await?;
        let r = admin.submit(sweep, String::new(), true).await.context("submitting")?;
        let (id, n) = (r.sweep_id, r.shards);
        println!(
            "fleet: {workers} simulated workers (one connection each, heartbeat every {} s, idle poll {} ms), shards of {shard_secs} s on average, two coordinator processes, one PostgreSQL; {n} shards",
            HEARTBEAT.as_secs(),
            IDLE_POLL.as_millis()
        );
        let tally = Arc::new(Tally::default());
        let done = Arc::new(tokio::sync::Notify::new());
        let start = Instant::now();
        let tasks: Vec<_> =
            (0..workers).map(|i| tokio::spawn(worker(urls[i % urls.len()].clone(), i, shard_secs, tally.clone(), done.clone()))).collect();
        // Sample PostgreSQL's connections while the fleet runs, until the sweep is done.
        let store = jagged_store::Store::connect(&pg.url(), 1).await?;
        let mut max_conn = 0i64;
        let st = loop {
            let c = store.connections().await?;
            max_conn = max_conn.max(c);
            let st = admin.status(id).await?;
            if st.state != SweepState::Running {
                break st;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let secs = start.elapsed().as_secs_f64();
        let mem: Vec<String> = coords.iter().map(|c| memory(c.pid().unwrap_or(0))).collect();
        // Let the idle fleet keep polling a moment, as it would, then stop it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        done.notify_waiters();
        for t in tasks {
            t.abort();
        }
        let outputs = store.outputs(id).await?.len() as u32;
        let mut leases = tally.leases.lock().unwrap().clone();
        let mut commits = tally.commits.lock().unwrap().clone();
        let mut hbs = tally.heartbeat_times.lock().unwrap().clone();
        let hb_rate = tally.heartbeats.load(Ordering::Relaxed) as f64 / secs;
        println!("sweep done in {secs:.1} s: {n} shards, {} committed by this fleet, {} stale commits refused", tally.committed.load(Ordering::Relaxed), tally.stale.load(Ordering::Relaxed));
        println!(
            "  lease calls: {} ({} found no work); latency ms p50 {:.2} / p99 {:.2} / max {:.1}",
            leases.len(),
            tally.empty.load(Ordering::Relaxed),
            quantile(&mut leases, 0.5),
            quantile(&mut leases, 0.99),
            quantile(&mut leases, 1.0)
        );
        println!("  commit latency ms: p50 {:.2} / p99 {:.2} / max {:.1}", quantile(&mut commits, 0.5), quantile(&mut commits, 0.99), quantile(&mut commits, 1.0));
        println!(
            "  heartbeats absorbed: {hb_rate:.0}/s (the fleet sends {:.0}/s); latency ms p50 {:.2} / p99 {:.2}",
            workers as f64 / HEARTBEAT.as_secs_f64(),
            quantile(&mut hbs, 0.5),
            quantile(&mut hbs, 0.99)
        );
        println!("  PostgreSQL connections used: at most {max_conn} (two coordinators' pools of up to 16, and this bench's one)");
        println!("  coordinator memory: a {}; b {}", mem[0], mem[1]);
        let once = st.state == SweepState::Done && st.done == n && st.failed == 0 && outputs == n;
        println!("  every shard committed once: {} ({} done, {} failed, {outputs} outputs)", if once { "yes" } else { "NO" }, st.done, st.failed);
        if !once {
            bail!("shards lost or counted twice");
        }
        Ok::<_, anyhow::Error>(())
    });
    for mut c in coords {
        c.terminate(Duration::from_secs(10));
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
