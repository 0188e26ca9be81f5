//! `pipeline` and `python`: a sweep through the whole system against bare
//! ONNX Runtime, and against the straightforward Python script, with the same
//! model, batch and threads.

use crate::{bare, resolve_inputs, Common};
use anyhow::{bail, Context, Result};
use jagged_client::{admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use std::path::Path;
use std::time::{Duration, Instant};

/// A sweep of `crop` + `embed` (112 px) grids over the sample images through the
/// whole system (one worker); returns (inferences, seconds from first lease to last commit).
fn system_sweep(c: &Common, model: &Path, images: &Path, device: &str) -> Result<(i64, f64)> {
    let dir = std::env::temp_dir().join(format!("jagged-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let spec = dir.join("bench.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"bench pipeline\"\n[dataset]\npath = \"{}\"\n[[models]]\npath = \"{}\"\n\
             [[families]]\nkind = \"crop\"\nmax_shift = {}\n\
             [[families]]\nkind = \"embed\"\nsize = 112\nmax_shift = {}\n\
             [run]\nbatch_size = {}\n",
            images.display(),
            model.display(),
            c.max_shift,
            c.max_shift,
            c.batch
        ),
    )?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions {
        bin,
        dir: dir.clone(),
        threads: c.threads,
        lease_ms: 60_000,
        heartbeat_ms: 2_000,
        env: vec![("JAGGED_DEVICE".into(), device.into())],
        ..Default::default()
    };
    let cl = LocalCluster::start(opts)?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cl.store_url)?;
        let wall = Instant::now();
        let config = ClientConfig::new(cl.url.clone());
        let id = jagged_client::submit(&config, &spec, objects.as_ref(), &Default::default()).await?.sweep_id;
        let st = admin::wait(&config, id, |_| {}).await?;
        let wall = wall.elapsed().as_secs_f64();
        if st.state != SweepState::Done || st.failed > 0 || st.failed_items > 0 {
            bail!("bench sweep did not complete cleanly: {}", admin::line(&st));
        }
        let store = jagged_store::Store::connect(&cl.postgres.url(), 2).await?;
        let timing = store.sweep_timing(id).await?.context("no shard timing")?;
        let (first, last) = (timing.first_start_ms, timing.last_finish_ms);
        Ok::<_, anyhow::Error>((st.inferences_done, (last - first) as f64 / 1000.0, wall))
    });
    cl.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (n, secs, wall) = result?;
    println!("jagged sweep: {n} inferences in {secs:.2} s from first lease to last commit: {:.1} img/s", n as f64 / secs);
    println!("  (wall time from submit to done, incl. upload and polling: {wall:.2} s, {:.1} img/s)", n as f64 / wall);
    Ok((n, secs))
}

pub(crate) fn run(c: &Common) -> Result<()> {
    let (model, images) = resolve_inputs(c)?;
    println!("pipeline: EfficientNet-Lite0, batch {}, {} ORT thread(s), crop grid {2}x{2}", c.batch, c.threads, 2 * c.max_shift + 1);
    let b1 = bare(&model, c.threads, c.batch, c.bare_secs, &images)?;
    println!("bare ORT session.run (before): {b1:.1} img/s");
    let (n, secs) = system_sweep(c, &model, &images, "cpu")?;
    std::thread::sleep(Duration::from_millis(200));
    let b2 = bare(&model, c.threads, c.batch, c.bare_secs, &images)?;
    println!("bare ORT session.run (after): {b2:.1} img/s");
    let base = (b1 + b2) / 2.0;
    println!("ratio jagged / bare ORT = {:.3} (bar: >= 0.95)", n as f64 / secs / base);
    Ok(())
}

/// The same sweep through the system and through `bench/python_baseline.py`
/// (Pillow + numpy + onnxruntime in one process), same model, batch and threads.
pub(crate) fn python(c: &Common, python: &Path, device: &str, script: &Path) -> Result<()> {
    let (model, images) = resolve_inputs(c)?;
    if !python.is_file() {
        bail!("{} not found: run `scripts/fetch.sh venv` first", python.display());
    }
    println!(
        "python: EfficientNet-Lite0 on {device}, batch {}, {} ORT thread(s), crop + embed grids {2}x{2}",
        c.batch,
        c.threads,
        2 * c.max_shift + 1
    );
    if !script.is_file() {
        bail!("{} not found (run from the repository root, or give --script)", script.display());
    }
    let card = jagged_onnx::card::card_path(&model);
    let run_python = || -> Result<(i64, f64)> {
        let out = std::env::temp_dir().join(format!("jagged-bench-python-{}.csv", std::process::id()));
        let o = std::process::Command::new(python)
            .arg(script)
            .args([&model, &card, &images, &out])
            .args(["--max-shift", &c.max_shift.to_string(), "--batch", &c.batch.to_string(), "--threads", &c.threads.to_string()])
            .args(["--device", device])
            .output()?;
        let _ = std::fs::remove_file(&out);
        if !o.status.success() {
            bail!("python baseline failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).context("python baseline output")?;
        let (n, secs) = (v["inferences"].as_i64().context("inferences")?, v["seconds"].as_f64().context("seconds")?);
        println!("python (Pillow + numpy + onnxruntime): {n} inferences in {secs:.2} s: {:.1} img/s", n as f64 / secs);
        Ok((n, secs))
    };
    let (pn1, ps1) = run_python()?;
    let (n, secs) = system_sweep(c, &model, &images, device)?;
    let (pn2, ps2) = run_python()?;
    if pn1 != n || pn2 != n {
        bail!("the python baseline ran {pn1} inferences, jagged {n}: not the same protocol");
    }
    let py = (pn1 + pn2) as f64 / (ps1 + ps2);
    let bar = if device.starts_with("cuda") { ">= 2 on a GPU" } else { ">= 1.3 on CPU" };
    println!("ratio jagged / python = {:.2} (bar: {bar})", n as f64 / secs / py);
    Ok(())
}
