//! `jagged-bench scheduler`: claim+commit cycles per second with many
//! concurrent worker clients, and claim latency against queue depth.
//!
//! The coordinator runs as its own process on a private PostgreSQL (as in
//! `jagged demo`); the worker clients are tasks of this process, each with its
//! own connection, doing what a worker does around a shard: `Lease`, then
//! `Complete` with the attempt's part key. No inference runs: this measures the
//! scheduler, not the model. Sweeps are submitted resolved (image and model keys
//! need not exist, since nothing reads them).

use anyhow::{bail, Context, Result};
use jagged_client::{admin, Admin, ClientConfig};
use jagged_domain::spec::ResolvedSweep;
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use jagged_proto::v1::{CompleteRequest, LeaseRequest, RegisterRequest};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A resolved sweep of `images` x `families` one-image shards (the tiny test CNN).
fn resolved(images: u32, families: u32) -> ResolvedSweep {
    jagged_testkit::resolved(images as usize, &"[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n".repeat(families as usize), 1, 3)
}

async fn submit(url: &str, images: u32, families: u32) -> Result<(i64, u32)> {
    let sweep = resolved(images, families);
    let mut admin = Admin::connect(&ClientConfig::new(url)).await?;
    let r = admin.submit(sweep, String::new(), true).await.context("submitting")?;
    Ok((r.sweep_id, r.shards))
}

/// The model key of [`resolved`]'s sweeps.
const MODEL_KEY: &str = "blobs/sha256/model";

async fn client(url: &str) -> Result<(WorkerServiceClient<Channel>, i64)> {
    let ch = jagged_proto::transport::endpoint(url, None).map_err(anyhow::Error::msg)?.tcp_nodelay(true).connect().await?;
    let mut c = WorkerServiceClient::new(ch);
    let id = c.register(RegisterRequest { name: "bench".into(), host: "bench".into(), device: "cpu".into() }).await?.into_inner().worker_id;
    Ok((c, id))
}

/// One lease + commit; None when nothing was leased. Returns the two latencies.
async fn cycle(c: &mut WorkerServiceClient<Channel>, worker: i64) -> Result<Option<(Duration, Duration)>> {
    let t = Instant::now();
    let shards =
        c.lease(LeaseRequest { worker_id: worker, max_shards: 1, loaded_models: vec![MODEL_KEY.into()], sweep_id: 0 }).await?.into_inner().shards;
    let lease = t.elapsed();
    let Some(s) = shards.into_iter().next() else { return Ok(None) };
    let t = Instant::now();
    c.complete(commit_of(worker, s, "CPUExecutionProvider", 0.001)).await?;
    Ok(Some((lease, t.elapsed())))
}

/// The commit a worker sends for a leased shard (its attempt's part key; no
/// part is written, since nothing reads it).
pub fn commit_of(worker: i64, s: jagged_proto::v1::ShardTask, provider: &str, seconds: f64) -> CompleteRequest {
    CompleteRequest {
        worker_id: worker,
        shard_id: s.shard_id,
        lease_epoch: s.lease_epoch,
        object_key: jagged_domain::keys::part_key(s.sweep_id, s.shard_id, s.attempt, s.lease_epoch),
        rows: 2,
        sha256: "0".repeat(64),
        failed_items: vec![],
        execution_provider: provider.into(),
        seconds,
        model_key: s.model.map(|m| m.key).unwrap_or_default(),
        busy_seconds: seconds,
        ..Default::default()
    }
}

fn quantile(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

fn cluster_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("jagged-bench-scheduler-{}", std::process::id()))
}

/// A coordinator on a private PostgreSQL, no workers.
fn cluster(postgres: jagged_local::PgSettings) -> Result<LocalCluster> {
    let dir = cluster_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions {
        bin,
        dir,
        workers: 0,
        lease_ms: 60_000,
        heartbeat_ms: 5_000,
        env: vec![("JAGGED_LOG".into(), "warn".into())],
        postgres,
        ..Default::default()
    };
    Ok(LocalCluster::start(opts)?)
}

/// Runs `workers` clients doing lease+commit cycles for `secs` seconds; the
/// cycles completed in each tenth of that time.
async fn cycles_for(url: &str, workers: usize, secs: u64) -> Result<Vec<u64>> {
    let start = Instant::now();
    let tenth = Duration::from_secs_f64(secs as f64 / 10.0);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let (mut c, w) = client(&url).await?;
                let mut done = vec![0u64; 10];
                loop {
                    let at = start.elapsed();
                    if at >= tenth * 10 {
                        return Ok::<_, anyhow::Error>(done);
                    }
                    cycle(&mut c, w).await?.context("the queue ran dry; the sweep is too small")?;
                    done[((at.as_secs_f64() / tenth.as_secs_f64()) as usize).min(9)] += 1;
                }
            })
        })
        .collect();
    let mut total = vec![0u64; 10];
    for t in tasks {
        for (a, b) in total.iter_mut().zip(t.await??) {
            *a += b;
        }
    }
    Ok(total)
}

/// The statements that took the most of the server's time since the last reset.
async fn print_statements(store: &jagged_store::Store) -> Result<()> {
    println!("  statements by PostgreSQL's time (total s, calls, mean and max ms):");
    for st in store.top_statements(10).await? {
        println!("    {:>8.2} {:>8} {:>8.3} {:>9.3}  {}", st.total_ms / 1e3, st.calls, st.mean_ms, st.max_ms, st.query);
    }
    Ok(())
}

/// Dead and live tuples of the queue's tables.
async fn tuples(store: &jagged_store::Store) -> Result<String> {
    let rows = store.tuples().await?;
    Ok(rows
        .iter()
        .map(|t| format!("{} {} dead / {} live ({} autovacuums so far)", t.name, t.dead, t.live, t.autovacuums))
        .collect::<Vec<_>>()
        .join(", "))
}

/// `--hold-snapshot`: cycles per second for `secs` seconds, then again while a
/// REPEATABLE READ transaction holds a snapshot open on another connection
/// (holding back PostgreSQL's xmin horizon, so no dead tuple can be removed).
pub fn held(workers: usize, secs: u64, statements: bool) -> Result<()> {
    let mut postgres = jagged_local::PgSettings::from_env();
    if statements {
        postgres.extra.extend(["shared_preload_libraries=pg_stat_statements".into(), "pg_stat_statements.track=all".into()]);
    }
    let cl = cluster(postgres)?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let url = cl.url.clone();
        let store = jagged_store::Store::connect(&cl.postgres.url(), 2).await?;
        println!("scheduler --hold-snapshot {secs}: {workers} concurrent worker clients, one coordinator process, private PostgreSQL");
        // Enough shards for either run at 10,000 cycles/s.
        let shards = (10_000 * secs).max(10_000) as u32;
        let mut rates = Vec::new();
        if statements {
            store.enable_statement_stats().await?;
        }
        for hold in [false, true] {
            let (id, n) = submit(&url, shards / 10, 10).await?;
            // Each run starts from a vacuumed, checkpointed database, so
            // neither pays for cleaning up after the submit or the run before
            // it, nor for writing out what they dirtied.
            store.vacuum(true).await?;
            store.checkpoint().await?;
            if statements {
                store.reset_statement_stats().await?;
            }
            let mut snapshot = None;
            if hold {
                let held = jagged_store::Store::hold_snapshot(&cl.postgres.url()).await?;
                println!("held: a REPEATABLE READ transaction that read {} outputs stays open for the whole run", held.outputs);
                snapshot = Some(held);
            }
            let per = cycles_for(&url, workers, secs).await?;
            let total: u64 = per.iter().sum();
            let rate = total as f64 / secs as f64;
            let tenths: Vec<String> = per.iter().map(|c| format!("{:.0}", *c as f64 * 10.0 / secs as f64)).collect();
            println!(
                "{}: {total} cycles in {secs} s: {rate:.0} cycles/s (per tenth of the run: {})",
                if hold { "snapshot held" } else { "no snapshot " },
                tenths.join(" ")
            );
            // Statistics are flushed at intervals; give them a moment.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            println!("  at the end: {} (sweep {id}: {n} shards)", tuples(&store).await?);
            if statements {
                print_statements(&store).await?;
            }
            if let Some(held) = snapshot {
                held.release().await?;
                store.vacuum(false).await?;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                println!("  once the snapshot ended, after a vacuum: {}", tuples(&store).await?);
            }
            Admin::connect(&ClientConfig::new(url.clone())).await?.cancel(id).await?;
            rates.push(rate);
        }
        println!("ratio held / not held = {:.3} (bar: >= 0.90)", rates[1] / rates[0]);
        Ok::<_, anyhow::Error>(())
    });
    cl.stop();
    let _ = std::fs::remove_dir_all(cluster_dir());
    result
}

pub fn run(workers: usize, shards: u32, depths: &[u32], samples: usize) -> Result<()> {
    let cl = cluster(jagged_local::PgSettings::from_env())?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let url = cl.url.clone();
        // Throughput: `workers` clients until the sweep is drained.
        let families = 10;
        let (id, n) = submit(&url, shards.div_ceil(families), families).await?;
        println!("scheduler: {workers} concurrent worker clients (one connection each), one coordinator process, private PostgreSQL");
        let start = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    let (mut c, w) = client(&url).await?;
                    let mut done = 0u64;
                    while cycle(&mut c, w).await?.is_some() {
                        done += 1;
                    }
                    Ok::<_, anyhow::Error>(done)
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        let mut admin = Admin::connect(&ClientConfig::new(url.clone())).await?;
        let st = admin.status(id).await?;
        if total != n as u64 || st.done != n || st.state != SweepState::Done {
            bail!("throughput run: {total} cycles for {n} shards; {}", admin::line(&st));
        }
        println!("{n} shards leased and committed in {secs:.2} s: {:.0} claim+complete cycles/s (bar: >= 2000)", n as f64 / secs);

        // Latency against queue depth: one client, the sweep of `depth` shards queued.
        println!("lease and commit latency with one client (ms; p50 / p99 over {samples} cycles):");
        for &depth in depths {
            let families = (depth / 1000).max(1);
            let t = Instant::now();
            let (id, n) = submit(&url, depth / families, families).await?;
            let submit_secs = t.elapsed().as_secs_f64();
            let (mut c, w) = client(&url).await?;
            for _ in 0..20 {
                cycle(&mut c, w).await?; // warm-up
            }
            let (mut lease, mut commit) = (Vec::new(), Vec::new());
            for _ in 0..samples {
                let (l, m) = cycle(&mut c, w).await?.context("queue ran dry")?;
                lease.push(l);
                commit.push(m);
            }
            println!(
                "  {n:>8} queued: lease {:.2} / {:.2}, commit {:.2} / {:.2}   (submit + plan + insert took {submit_secs:.1} s)",
                quantile(&mut lease, 0.5),
                quantile(&mut lease, 0.99),
                quantile(&mut commit, 0.5),
                quantile(&mut commit, 0.99)
            );
            admin.cancel(id).await?;
        }
        // What the database and the coordinator hold, for docs/scaling.md.
        let store = jagged_store::Store::connect(&cl.postgres.url(), 2).await?;
        for t in store.table_sizes().await? {
            let (table, bytes, rows) = (t.name, t.bytes, t.rows);
            println!(
                "  table {table}: {rows} rows, {:.1} MiB with indexes ({:.0} bytes per row)",
                bytes as f64 / 1048576.0,
                bytes as f64 / rows.max(1) as f64
            );
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", cl.coordinator.pid().unwrap_or(0))).unwrap_or_default();
        let kb = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string()).unwrap_or_else(|| "?".into());
        println!("  coordinator memory: peak {}, now {}", kb("VmHWM:"), kb("VmRSS:"));
        Ok::<_, anyhow::Error>(())
    });
    cl.stop();
    let _ = std::fs::remove_dir_all(cluster_dir());
    result
}
