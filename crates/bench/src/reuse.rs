//! `reuse`: a three-model sweep, then the same sweep plus a fourth model (which
//! adopts the first three models' parts and runs only the fourth's), then the
//! four-model sweep run in full (`--again`): what the second run computed, its
//! wall time against the fourth model's share of a full run, and whether its
//! report equals the full run's. Then both grids widened by two pixels each way
//! (taking the earlier grids' rows where they hold) against the wider grids run
//! in full: inferences, wall time and reports.

use anyhow::{bail, Context, Result};
use jagged_client::{admin, ClientConfig};
use jagged_domain::status::SweepState;
use jagged_local::{ClusterOptions, LocalCluster};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

fn spec(dir: &Path, name: &str, models: usize, max_shift: u32) -> Result<std::path::PathBuf> {
    let mut s = format!("name = \"bench reuse\"\n[dataset]\npath = \"{}\"\n", dir.join("data").display());
    for m in 0..models {
        s += &format!("[[models]]\npath = \"{}\"\n", dir.join(format!("models/tiny_{m}.onnx")).display());
    }
    s += &format!("[[families]]\nkind = \"crop\"\nmax_shift = {max_shift}\n[[families]]\nkind = \"embed\"\nsize = 48\nmax_shift = {max_shift}\n");
    // Shards of a fixed size, so every run plans the same shards.
    s += "[shard]\nimages = 6\n[run]\nbatch_size = 32\n";
    let path = dir.join(name);
    std::fs::write(&path, s)?;
    Ok(path)
}

/// Runs the benchmark: `images` images, a crop and an embed grid of half-width `max_shift`.
pub fn run(images: u32, max_shift: u32, threads: usize) -> Result<()> {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        bail!("ORT_DYLIB_PATH is not set: run benchmarks with `just bench ...` (or point it at libonnxruntime.so)");
    }
    let dir = std::env::temp_dir().join(format!("jagged-bench-reuse-{}", std::process::id()));
    write_inputs(&dir, images)?;
    let three = spec(&dir, "three.toml", 3, max_shift)?;
    let four = spec(&dir, "four.toml", 4, max_shift)?;
    let bin = std::env::current_exe()?.parent().context("binary folder")?.join("jagged");
    let opts = ClusterOptions { bin, dir: dir.join("run"), threads, lease_ms: 60_000, heartbeat_ms: 2_000, ..Default::default() };
    let points = (2 * max_shift + 1).pow(2);
    println!("reuse: {images} images, crop and embed grids of {points} points, tiny CNNs (64 px), one worker with {threads} thread(s)");
    let cl = LocalCluster::start(opts)?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let objects = jagged_artifacts::open_store(&cl.store_url)?;
        let config = ClientConfig::new(cl.url.clone());
        let store = jagged_store::Store::connect(&cl.postgres.url(), 2).await?;
        let sweep = |path: std::path::PathBuf, again: bool| {
            let (config, objects) = (config.clone(), objects.clone());
            async move {
                let wall = Instant::now();
                let over = jagged_client::Overrides { again, ..Default::default() };
                let sub = jagged_client::submit(&config, &path, objects.as_ref(), &over).await?;
                let st = admin::wait(&config, sub.sweep_id, |_| {}).await?;
                if st.state != SweepState::Done || st.failed > 0 {
                    bail!("bench sweep did not complete cleanly: {}", admin::line(&st));
                }
                Ok::<_, anyhow::Error>((sub, wall.elapsed().as_secs_f64()))
            }
        };
        let parts = |id: i64| {
            let store = &store;
            async move { Ok::<_, anyhow::Error>(store.outputs(id).await?) }
        };
        let (a, t_three) = sweep(three.clone(), false).await?;
        let n_three: i64 = parts(a.sweep_id).await?.iter().map(|o| o.rows).sum();
        println!("3 models: {n_three} inferences in {t_three:.2} s (submit to done)");
        let before: HashSet<String> = parts(a.sweep_id).await?.into_iter().map(|o| o.object_key).collect();
        let (b, t_plus) = sweep(four.clone(), false).await?;
        let b_parts = parts(b.sweep_id).await?;
        let ran: i64 = b_parts.iter().filter(|o| !before.contains(&o.object_key)).map(|o| o.rows).sum();
        let fourth: i64 = b_parts.iter().filter(|o| o.model_idx == 3).map(|o| o.rows).sum();
        println!(
            "3 models + a 4th: {ran} inferences run (the 4th model's: {fourth}), {} of {} shards reused from sweep {}, in {t_plus:.2} s",
            b.reused_shards, b.shards, a.sweep_id
        );
        let (c, t_full) = sweep(four.clone(), true).await?;
        let n_full: i64 = parts(c.sweep_id).await?.iter().map(|o| o.rows).sum();
        println!("4 models in full (--again): {n_full} inferences in {t_full:.2} s");
        let r_plus = jagged_report::build(&store, objects.as_ref(), b.sweep_id).await?;
        let r_full = jagged_report::build(&store, objects.as_ref(), c.sweep_id).await?;
        let same = equal(&r_plus, b.sweep_id, &r_full, c.sweep_id);

        // Both grids two pixels wider each way, taking the earlier grids' rows.
        let wider = spec(&dir, "wider.toml", 4, max_shift + 2)?;
        let (d, t_wide) = sweep(wider.clone(), false).await?;
        let (e, t_wide_full) = sweep(wider, true).await?;
        let n_wide_full: i64 = parts(e.sweep_id).await?.iter().map(|o| o.rows).sum();
        let r_wide = jagged_report::build(&store, objects.as_ref(), d.sweep_id).await?;
        let r_wide_full = jagged_report::build(&store, objects.as_ref(), e.sweep_id).await?;
        let wide_same = equal(&r_wide, d.sweep_id, &r_wide_full, e.sweep_id);
        let widened = Widened { planned: d.widened_inferences, full: d.widened_full, pairs: d.widened_pairs, secs: t_wide, full_secs: t_wide_full };
        println!(
            "4 models, grids widened to {} points: {} of {} pairs widened, {} inferences planned of {}, in {t_wide:.2} s",
            (2 * max_shift + 5).pow(2),
            d.widened_pairs,
            8,
            d.widened_inferences,
            d.widened_full
        );
        println!("the wider grids in full (--again): {n_wide_full} inferences in {t_wide_full:.2} s");
        Ok::<_, anyhow::Error>((ran, fourth, t_plus, t_full, same, widened, wide_same))
    });
    cl.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (ran, fourth, t_plus, t_full, same, widened, wide_same) = result?;
    let share = t_full / 4.0;
    println!("inferences run / the 4th model's = {:.3} (bar: 1)", ran as f64 / fourth as f64);
    println!(
        "wall time / the 4th model's share of the full run ({share:.2} s) = {:.2}; beyond that share: {:+.2} s (bar: a fixed overhead)",
        t_plus / share,
        t_plus - share
    );
    println!("report equal to the full run's (summary CSV and Markdown, bar the sweep id): {}", if same { "yes" } else { "NO" });
    let w = &widened;
    println!(
        "widened grids: inferences planned / a full run's = {:.3} (the rows written anew and the points beside them); wall time / the full run's = {:.2}",
        w.planned as f64 / w.full as f64,
        w.secs / w.full_secs
    );
    println!("widened report equal to the full run's of the wider grids: {}", if wide_same { "yes" } else { "NO" });
    if ran != fourth || !same {
        bail!("reuse ran more than the new model, or changed the report");
    }
    if w.pairs != 8 || !wide_same {
        bail!("widening took no rows, or changed the report");
    }
    Ok(())
}

/// Four tiny CNNs (64 px) and `images` images in `dir`.
fn write_inputs(dir: &Path, images: u32) -> Result<()> {
    std::fs::create_dir_all(dir.join("models"))?;
    std::fs::create_dir_all(dir.join("data"))?;
    for m in 0..4 {
        let built =
            jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { side: 64, seed: 100 + m, name: format!("tiny_{m}"), ..Default::default() });
        std::fs::write(dir.join(format!("models/tiny_{m}.onnx")), &built.bytes)?;
        std::fs::write(dir.join(format!("models/tiny_{m}.card.json")), serde_json::to_vec(&built.card)?)?;
    }
    for i in 0..images {
        std::fs::write(dir.join(format!("data/{i:05}.png")), jagged_testkit::png(96, 80, i))?;
    }
    Ok(())
}

/// Whether two sweeps' reports are equal (summary CSV and Markdown, bar the
/// sweep id); the lines that differ are printed.
fn equal(a: &jagged_report::Report, a_id: i64, b: &jagged_report::Report, b_id: i64) -> bool {
    let md = |r: &jagged_report::Report, id: i64| r.markdown().replacen(&format!("# Sweep {id}:"), "# Sweep N:", 1);
    let (x, y) = (md(a, a_id), md(b, b_id));
    for (l, r) in x.lines().zip(y.lines()).filter(|(l, r)| l != r) {
        println!("  differs:\n    {l}\n    {r}");
    }
    a.csv() == b.csv() && x == y
}

/// The widened sweep against the wider grids run in full.
struct Widened {
    planned: u64,
    full: u64,
    pairs: u32,
    secs: f64,
    full_secs: f64,
}
