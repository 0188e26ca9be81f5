//! `jagged-bench aggregate`: the report's aggregation against DuckDB running the
//! same summary query over the same Parquet parts with the same threads, with
//! the peak memory of each, at two sweep sizes.
//!
//! The parts are synthetic but have the real schema and shape: shards of 35
//! images x 289 points (a 17x17 crop grid), two models, written by the workers'
//! own encoder, kept in `.cache/jagged/bench-aggregate/<rows>` for reruns. Each
//! side runs in its own process (ours: `jagged-bench aggregate-run`; DuckDB:
//! `bench/aggregate_duckdb.py`) so peak RSS is its own. Both print the metrics
//! per (model, family), and the bench checks they agree.

use anyhow::{bail, Context, Result};
use jagged_artifacts::ResultRow;
use jagged_domain::metrics::METRICS;
use jagged_domain::rng::SplitMix;
use jagged_domain::transform::Family;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const IMAGES_PER_PART: usize = 35;
const MODELS: usize = 2;

fn family() -> Family {
    Family::Crop(jagged_domain::transform::Crop { max_shift: 8, step: 1.0, resize: None, resample: Default::default() })
}

/// Writes parts of about `rows` rows into `dir` (once).
fn generate(dir: &Path, rows: usize) -> Result<usize> {
    let done = dir.join("complete");
    if done.is_file() {
        return Ok(std::fs::read_to_string(&done)?.trim().parse()?);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let fam = family();
    let points = fam.points();
    let pairs = fam.pairs();
    let mut fwd = vec![0i32; points.len()];
    for (a, _) in &pairs {
        fwd[*a] += 1;
    }
    let reference = fam.reference();
    let per_part = IMAGES_PER_PART * points.len();
    let parts = rows.div_ceil(per_part);
    println!("writing {parts} parts of {per_part} rows into {} (once)", dir.display());
    let mut rng = SplitMix(7);
    let mut total = 0;
    for p in 0..parts {
        let model = p % MODELS;
        let mut out = Vec::with_capacity(per_part);
        for k in 0..IMAGES_PER_PART {
            let image = (p / MODELS * IMAGES_PER_PART + k) as i32;
            let label = (image % 7 != 0).then_some(image % 1000);
            for (i, pt) in points.iter().enumerate() {
                let r = rng.next_u64();
                let hit = !r.is_multiple_of(4);
                let top1 = if hit && !r.is_multiple_of(3) { label.unwrap_or(1) } else { (r >> 8) as i32 % 1000 };
                let mut top5: Vec<i32> = (0..5).map(|j| if j == 0 { top1 } else { ((r >> (8 + 6 * j)) % 1000) as i32 }).collect();
                if hit && top1 != label.unwrap_or(-1) {
                    top5[1 + (r >> 40) as usize % 4] = label.unwrap_or(2);
                }
                let changes = if fwd[i] > 0 { ((r >> 20) % (fwd[i] as u64 + 2)).min(fwd[i] as u64) as i32 } else { 0 };
                out.push(ResultRow {
                    sweep_id: 1,
                    shard_id: p as i64 + 1,
                    attempt: 1,
                    model: format!("model{model}"),
                    family: "crop".into(),
                    family_index: 0,
                    image_index: image,
                    image_name: format!("{image:07}.JPEG"),
                    label,
                    point: i as i32,
                    dx: pt.dx,
                    dy: pt.dy,
                    scale: 1.0,
                    angle: 0.0,
                    is_reference: i == reference,
                    top1,
                    top5_class: top5,
                    top5_prob: vec![0.5, 0.2, 0.1, 0.05, 0.01],
                    p_label: label.map(|_| (r >> 44) as f32 / (1u64 << 20) as f32),
                    p_ref_top1: 0.5,
                    fwd_pairs: fwd[i],
                    fwd_top1_changes: changes,
                    fwd_abs_diff: changes as f64 * 0.125 + ((r >> 50) % 8) as f64 / 64.0,
                    fwd_top5_transitions: (changes > 0 && r.is_multiple_of(5)) as i32,
                    fwd_top5_dist: changes * 2 + (r % 3) as i32,
                    provider: "CPUExecutionProvider".into(),
                    precision: "fp32".into(),
                    render: "host".into(),
                    probs: None,
                    layers: None,
                });
            }
        }
        total += out.len();
        std::fs::write(dir.join(format!("part-{p:06}.parquet")), jagged_artifacts::encode(&out)?)?;
    }
    std::fs::write(done, total.to_string())?;
    Ok(total)
}

fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Our side, in this process: read every part, fold it (only the summary's
/// columns), merge in part order, bootstrap, finish. Prints JSON.
pub fn run_ours(dir: &Path, threads: usize) -> Result<()> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect();
    files.sort();
    let fam = family();
    let items: Vec<jagged_domain::spec::ImageRef> = vec![];
    let start = Instant::now();
    let threads = threads.max(1);
    let chunk = files.len().div_ceil(threads);
    let partials: Vec<Result<(BTreeMap<usize, jagged_report::RowFold>, usize)>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(c, files)| {
                let (fam, items) = (&fam, &items);
                s.spawn(move || {
                    let mut folds: BTreeMap<usize, jagged_report::RowFold> = BTreeMap::new();
                    let mut rows = 0;
                    for (k, f) in files.iter().enumerate() {
                        let cols = jagged_artifacts::decode_summary(bytes::Bytes::from(std::fs::read(f)?))?;
                        rows += cols.len();
                        let model = (c * chunk + k) % MODELS;
                        folds.entry(model).or_insert_with(|| jagged_report::RowFold::new(fam)).add_part(&cols, items);
                    }
                    Ok((folds, rows))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("fold thread")).collect()
    });
    let mut all: BTreeMap<usize, jagged_report::RowFold> = BTreeMap::new();
    let mut rows = 0;
    for p in partials {
        let (folds, n) = p?;
        rows += n;
        for (m, f) in folds {
            match all.get_mut(&m) {
                Some(a) => a.merge(f),
                None => {
                    all.insert(m, f);
                }
            }
        }
    }
    let family = fam.name();
    let results: Vec<serde_json::Value> = all
        .iter()
        .map(|(m, f)| {
            let (t, ci) = f.finish();
            let mut row = serde_json::Map::new();
            row.insert("model".into(), format!("model{m}").into());
            row.insert("images".into(), t.images.into());
            row.insert("inferences".into(), t.inferences.into());
            for metric in METRICS {
                row.insert(metric.name.into(), metric.of(family, &t).into());
            }
            row.insert("acc1_ci".into(), ci.get("acc1").map(|i| vec![i.lo, i.hi]).into());
            serde_json::Value::Object(row)
        })
        .collect();
    let secs = start.elapsed().as_secs_f64();
    println!("{}", serde_json::json!({"rows": rows, "seconds": secs, "peak_rss_kb": peak_rss_kb(), "results": results}));
    Ok(())
}

fn side(mut cmd: std::process::Command, what: &str) -> Result<serde_json::Value> {
    let o = cmd.output().with_context(|| format!("running {what}"))?;
    if !o.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let line = String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line).with_context(|| format!("{what} output: {line}"))
}

/// Compares the metrics both sides computed: the counts and every metric of
/// the table (a metric DuckDB's query lacks is a disagreement).
fn agree(ours: &serde_json::Value, duck: &serde_json::Value) -> Result<()> {
    let (a, b) = (ours["results"].as_array().context("results")?, duck["results"].as_array().context("results")?);
    if a.len() != b.len() {
        bail!("{} rows vs DuckDB's {}", a.len(), b.len());
    }
    for (x, y) in a.iter().zip(b) {
        for k in ["images", "inferences"].into_iter().chain(METRICS.iter().map(|m| m.name)) {
            let Some(v) = y.get(k) else { bail!("DuckDB's query computes no `{k}`") };
            let (u, v) = (x[k].as_f64(), v.as_f64());
            let same = match (u, v) {
                (Some(u), Some(v)) => (u - v).abs() <= 1e-9 * v.abs().max(1.0),
                (u, v) => u.is_none() && v.is_none(),
            };
            if !same {
                bail!("{} {k}: ours {u:?}, DuckDB {v:?}", x["model"]);
            }
        }
    }
    Ok(())
}

pub fn run(rows: &[usize], threads: usize, python: &Path, script: &Path) -> Result<()> {
    if !python.is_file() {
        bail!("{} not found: run `scripts/fetch.sh duckdb` first", python.display());
    }
    if !script.is_file() {
        bail!("{} not found (run from the repository root, or give --script)", script.display());
    }
    let exe = std::env::current_exe()?;
    println!(
        "aggregate: the report's summary (totals, per-image bootstrap units, figure sums, 1000-resample bootstrap) vs DuckDB, {threads} thread(s)"
    );
    for &n in rows {
        let dir = Path::new(".cache/jagged/bench-aggregate").join(n.to_string());
        let total = generate(&dir, n)?;
        let dir = std::fs::canonicalize(&dir)?;
        let run_ours = || {
            let mut c = std::process::Command::new(&exe);
            c.args(["aggregate-run", "--dir"]).arg(&dir).args(["--threads", &threads.to_string()]);
            side(c, "our aggregation")
        };
        let run_duck = || {
            let mut c = std::process::Command::new(python);
            c.arg(script).arg(&dir).arg(threads.to_string());
            side(c, "DuckDB")
        };
        // Each side twice, interleaved (the first read of the files warms the page cache).
        let (_, d1, o1, d2, o2) = (run_ours()?, run_duck()?, run_ours()?, run_duck()?, run_ours()?);
        agree(&o1, &d1)?;
        let secs = |v: &serde_json::Value| v["seconds"].as_f64().unwrap_or(f64::NAN);
        let (ours, duck) = (secs(&o1).min(secs(&o2)), secs(&d1).min(secs(&d2)));
        let rss = |v: &serde_json::Value| v["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0;
        println!(
            "{total:>10} rows: jagged {:>6.1} M rows/s ({ours:.2} s, peak RSS {:.0} MiB) | DuckDB {:>6.1} M rows/s ({duck:.2} s, peak RSS {:.0} MiB) | ratio {:.2} (bar: >= 1)",
            total as f64 / ours / 1e6,
            rss(&o1).max(rss(&o2)),
            total as f64 / duck / 1e6,
            rss(&d1).max(rss(&d2)),
            duck / ours
        );
    }
    println!("verified: both computed the same metrics per model (12 significant digits)");
    Ok(())
}
