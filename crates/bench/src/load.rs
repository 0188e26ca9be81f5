//! `load`: many worker processes against one coordinator on many small
//! shards (or shards sized as a user's are): shards and rows per second with
//! workers leasing ahead against workers leasing none, the CPU each part of
//! the system spent per shard, and a check that nothing was lost or doubled.

use anyhow::{bail, Context, Result};
use jagged_client::{admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use std::path::Path;

/// Shards per second `load` measured on 2026-11-26 (2 cores), the reference of
/// its bar.
const LOAD_REFERENCE: f64 = 865.0;

pub(crate) fn run(workers: usize, images: u32, families: u32, prefetch: u32, shard_images: u32) -> Result<()> {
    let size = if shard_images == 0 { "sized by the planner".to_string() } else { format!("{shard_images} image(s) x 2 points each") };
    println!("load: {workers} worker processes, one coordinator, {images} images x {families} families (tiny CNN, shards of {size})");
    // Alternated, and every run's files kept until the end: a file system slows
    // down right after many deletions, which would favour whichever ran first.
    let mut rates = [0.0f64; 2];
    let mut dirs = Vec::new();
    for run in 0..4 {
        let dir = std::env::temp_dir().join(format!("jagged-bench-load-{}-{run}", std::process::id()));
        let ahead = if run % 2 == 0 { 0 } else { prefetch };
        rates[run % 2] += load_run(&dir, workers, images, families, ahead, shard_images)? / 2.0;
        dirs.push(dir);
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    println!("prefetch 0: {:.0} shards/s, prefetch {prefetch}: {:.0} shards/s (each the mean of two runs)", rates[0], rates[1]);
    println!("ratio prefetch {prefetch} / none = {:.2}", rates[1] / rates[0]);
    // The bar is a rate: twice what this bench measured when leasing
    // ahead was added (another day, the same kind of machine: rates vary by
    // day, see bench/README.md).
    println!("prefetch {prefetch} / the {LOAD_REFERENCE:.0} shards/s of 2026-11-26 = {:.2} (bar: >= 2)", rates[1] / LOAD_REFERENCE);
    Ok(())
}

/// One load sweep on a fresh local deployment whose workers lease `prefetch`
/// shards ahead; shards per second from first lease to last commit.
fn load_run(dir: &Path, workers: usize, images: u32, families: u32, prefetch: u32, shard_images: u32) -> Result<f64> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("data"))?;
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec::default());
    jagged_onnx::card::write_model(&m, dir)?;
    let mut csv = String::from("file,label\n");
    for i in 0..images {
        let img = image::RgbImage::from_fn(36, 36, |x, y| image::Rgb([(x * 7 + i) as u8, (y * 5 + i / 3) as u8, (x ^ y) as u8]));
        img.save(dir.join(format!("data/{i:05}.png")))?;
        csv += &format!("{i:05}.png,{}\n", i % 10);
    }
    std::fs::write(dir.join("data/labels.csv"), csv)?;
    let mut spec = String::from("name = \"bench load\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"tiny_cnn.onnx\"\n");
    for _ in 0..families {
        spec += "[[families]]\nkind = \"diagonal\"\nsteps = 1\nresize = 36\n";
    }
    if shard_images > 0 {
        spec += &format!("[shard]\nimages = {shard_images}\n");
    }
    std::fs::write(dir.join("load.toml"), spec)?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions {
        bin,
        dir: dir.join("run"),
        workers,
        lease_ms: 30_000,
        heartbeat_ms: 2_000,
        env: vec![("JAGGED_LOG".into(), "warn".into()), ("JAGGED_PREFETCH".into(), prefetch.to_string())],
        ..Default::default()
    };
    let c = LocalCluster::start(opts)?;
    let worker_pids: Vec<u32> = c.workers.iter().filter_map(|w| w.pid()).collect();
    let coordinator_pid = c.coordinator.pid();
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&c.store_url)?;
        let config = ClientConfig::new(c.url.clone());
        let cpu = |pids: &[u32]| pids.iter().map(|&p| process_cpu_secs(p)).sum::<f64>();
        let before = (machine_busy_secs(), cpu(&worker_pids), coordinator_pid.map_or(0.0, process_cpu_secs), context_switches());
        let id = jagged_client::submit(&config, &dir.join("load.toml"), objects.as_ref(), &Default::default()).await?.sweep_id;
        let st = admin::wait(&config, id, |_| {}).await?;
        let after = (machine_busy_secs(), cpu(&worker_pids), coordinator_pid.map_or(0.0, process_cpu_secs), context_switches());
        let shards = st.total as u64;
        if st.state != SweepState::Done || st.failed > 0 || st.done as u64 != shards {
            bail!("load sweep did not complete cleanly: {}", admin::line(&st));
        }
        let store = jagged_store::Store::connect(&c.postgres.url(), 2).await?;
        let timing = store.sweep_timing(id).await?.context("no shard timing")?;
        let (first, last) = (timing.first_start_ms, timing.last_finish_ms);
        // Nothing lost, nothing twice: one output per shard, each row once.
        let outputs = store.outputs(id).await?;
        let mut seen = std::collections::HashSet::new();
        for o in &outputs {
            for r in jagged_artifacts::decode(jagged_artifacts::get(objects.as_ref(), &o.object_key).await?)? {
                if !seen.insert((r.family_index, r.image_index, r.point)) {
                    bail!("row counted twice: {:?}", (r.family_index, r.image_index, r.point));
                }
            }
        }
        let distinct: std::collections::HashSet<i64> = outputs.iter().map(|o| o.shard_id).collect();
        if outputs.len() as u64 != shards || distinct.len() as u64 != shards || seen.len() as i64 != st.inferences_total {
            bail!("lost work: {} outputs, {} distinct shards, {} rows of {}", outputs.len(), distinct.len(), seen.len(), st.inferences_total);
        }
        let per = |s: f64| s * 1000.0 / shards as f64;
        let (machine, workers, coordinator) = (per(after.0 - before.0), per(after.1 - before.1), per(after.2 - before.2));
        let switches = (after.3 - before.3) as f64 / shards as f64;
        let cpu = format!(
            "CPU per shard {machine:.2} ms: workers {workers:.2}, coordinator {coordinator:.2}, PostgreSQL and the rest {:.2}; {switches:.1} thread switches",
            machine - workers - coordinator
        );
        Ok::<_, anyhow::Error>(((last - first) as f64 / 1000.0, shards, seen.len(), cpu))
    });
    c.stop();
    let (secs, shards, rows, cpu) = result?;
    let rate = shards as f64 / secs;
    println!(
        "prefetch {prefetch}: {shards} shards in {secs:.2} s from first lease to last commit: {rate:.0} shards/s, {:.0} rows/s ({rows} rows); every shard committed exactly once, every row present once",
        rows as f64 / secs
    );
    println!("  {cpu} (from submit to done)");
    Ok(rate)
}

/// Seconds of CPU the machine spent busy (all cores, everything but idle and
/// I/O wait), from /proc/stat; 0 where there is none.
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return 0.0 };
    let ticks: Vec<f64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy / clock_ticks()
}

/// Thread switches on the machine since it started, from /proc/stat.
fn context_switches() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines().find_map(|l| l.strip_prefix("ctxt ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Seconds of CPU a process (all its threads) has used so far, from /proc; 0
/// once it has gone.
fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let t = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / clock_ticks()
}

/// Clock ticks per second of /proc's times: Linux's USER_HZ, 100 on every
/// architecture it runs jagged on.
fn clock_ticks() -> f64 {
    100.0
}
