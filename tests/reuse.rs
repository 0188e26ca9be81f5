use jagged_domain::status::SweepState;
use jagged_local::LocalCluster;
use jagged_testkit::{cluster_options, dataset, ort, tiny_model, wait};
use std::collections::HashSet;
use std::path::Path;

fn spec(models: &[&str], crop_shift: u32) -> String {
    let mut s = String::from("name = \"reuse\"\n[dataset]\npath = \"data\"\n");
    for m in models {
        s += &format!("[[models]]\npath = \"models/{m}.onnx\"\n");
    }
    s += &format!("[[families]]\nkind = \"crop\"\nmax_shift = {crop_shift}\n");
    s += "[[families]]\nkind = \"embed\"\nsize = 16\nmax_shift = 4\nstep = 2\n";
    s += "[[families]]\nkind = \"radius\"\nmax_radius = 3\n";
    s += "[shard]\nimages = 2\n[run]\nbatch_size = 8\n";
    s
}

fn model(dir: &Path, name: &str, seed: u64) {
    let m = jagged_onnx::tiny::build(&jagged_onnx::tiny::TinySpec { seed, name: name.into(), ..Default::default() });
    std::fs::write(dir.join(format!("{name}.onnx")), &m.bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.card.json")), serde_json::to_vec(&m.card).unwrap()).unwrap();
}

/// A finished two-model sweep, then the same sweep with a third model: only
/// the third model's shards run, the first two models' pairs adopt the first
/// sweep's parts (the same files, checked against their checksums), and the
/// report equals that of a full `--again` run of the three models. A sweep of
/// pairs all computed before is done at submit without a worker; a widened
/// crop grid takes the earlier grid's rows where it can and infers only the
/// points it needs (a damaged earlier part makes its shard run the whole
/// grid), reusing the other families, and reports as a full run of it does;
/// `--again` reuses nothing.
#[test]
fn a_sweep_plus_one_model_runs_only_that_model_and_reports_as_a_full_run() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let models = dir.join("models");
    tiny_model(&models);
    model(&models, "tiny_b", 11);
    model(&models, "tiny_c", 12);
    dataset(&dir.join("data"), 6, 10, &[("broken.png", b"not an image", Some(1))]);
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name)
    };
    let two = write("two.toml", spec(&["tiny_cnn", "tiny_b"], 2));
    let three = write("three.toml", spec(&["tiny_cnn", "tiny_b", "tiny_c"], 2));
    let only_b = write("only_b.toml", spec(&["tiny_b"], 2));
    let wider = write("wider.toml", spec(&["tiny_cnn", "tiny_b", "tiny_c"], 3));

    let cluster = LocalCluster::start(cluster_options(&dir.join("run"), 2, 10_000)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Ctx::of(&cluster).await;
        let sweeps = plus_one_model(&c, &two, &three).await;
        let b = done_at_submit(&c, &only_b, &sweeps).await;
        widened(&c, &wider, &sweeps, b, &dir.join("run/logs")).await;
    });
    cluster.stop();
}

/// What the phases of the test share: the cluster's coordinator, store and
/// database.
struct Ctx {
    url: String,
    objects: std::sync::Arc<dyn object_store::ObjectStore>,
    config: jagged_client::ClientConfig,
    store: jagged_store::Store,
}

impl Ctx {
    /// The cluster's coordinator, store and database.
    async fn of(cluster: &LocalCluster) -> Ctx {
        Ctx {
            url: cluster.url.clone(),
            objects: jagged_artifacts::open_store(&cluster.store_url).unwrap(),
            config: jagged_client::ClientConfig::new(&cluster.url),
            store: jagged_store::Store::connect(&cluster.postgres.url(), 2).await.unwrap(),
        }
    }

    async fn submit(&self, path: &Path, again: bool) -> jagged_client::Submitted {
        let over = jagged_client::Overrides { again, ..Default::default() };
        jagged_client::submit(&self.config, path, self.objects.as_ref(), &over).await.unwrap()
    }

    /// Each committed part's model and key.
    async fn keys(&self, id: i64) -> Vec<(i32, String)> {
        self.store.outputs(id).await.unwrap().into_iter().map(|o| (o.model_idx, o.object_key)).collect()
    }

    async fn report(&self, id: i64) -> jagged_report::Report {
        jagged_report::build(&self.store, self.objects.as_ref(), id).await.unwrap()
    }
}

/// A report in Markdown with its sweep's id taken out.
fn md(r: &jagged_report::Report, id: i64) -> String {
    r.markdown().replacen(&format!("# Sweep {id}:"), "# Sweep N:", 1)
}

/// The sweeps of the first phase: two models, the same plus a third, and
/// the three in full (`--again`).
struct Sweeps {
    first: i64,
    plus: i64,
    full: i64,
    /// The plus-one sweep's report.
    reused_report: jagged_report::Report,
}

/// A finished two-model sweep, then the same with a third model: only the
/// third model's shards run, the first two models' pairs adopt the first
/// sweep's parts, and the report equals a full `--again` run's.
async fn plus_one_model(c: &Ctx, two: &Path, three: &Path) -> Sweeps {
    let first = c.submit(two, false).await;
    assert_eq!(first.reused_shards, 0, "nothing to reuse yet");
    assert_eq!(wait(&c.url, first.sweep_id).await.state, SweepState::Done);
    let first_keys: HashSet<String> = c.keys(first.sweep_id).await.into_iter().map(|(_, k)| k).collect();

    // Plus a third model: the first two models' shards are adopted.
    let plus = c.submit(three, false).await;
    let first_shards = c.store.sweep(first.sweep_id).await.unwrap().total;
    assert_eq!(plus.reused_shards as i64, first_shards as i64, "every shard of the first sweep is reused");
    assert_eq!(plus.reused_from, vec![first.sweep_id]);
    let st = wait(&c.url, plus.sweep_id).await;
    assert_eq!(st.state, SweepState::Done);
    for (m, key) in &c.keys(plus.sweep_id).await {
        assert_eq!(first_keys.contains(key), *m < 2, "model {m}: part {key}");
    }
    // What ran for it: the third model's inferences alone.
    let ran: i64 = c.store.outputs(plus.sweep_id).await.unwrap().iter().filter(|o| !first_keys.contains(&o.object_key)).map(|o| o.rows).sum();
    let first_done = c.store.sweep(first.sweep_id).await.unwrap().inferences_done;
    assert_eq!(st.inferences_done, first_done + ran);

    // Everything again, from scratch: the same report.
    let full = c.submit(three, true).await;
    assert_eq!(full.reused_shards, 0, "--again reuses nothing");
    wait(&c.url, full.sweep_id).await;
    assert!(c.keys(full.sweep_id).await.iter().all(|(_, k)| !first_keys.contains(k)));
    let third: i64 = c.store.outputs(full.sweep_id).await.unwrap().iter().filter(|o| o.model_idx == 2).map(|o| o.rows).sum();
    assert_eq!(ran, third, "what ran for the sweep plus a model: that model's inferences alone");
    let reused_report = c.report(plus.sweep_id).await;
    let full_report = c.report(full.sweep_id).await;
    assert_eq!(reused_report.csv(), full_report.csv());
    assert_eq!(md(&reused_report, plus.sweep_id), md(&full_report, full.sweep_id), "the whole report, bar its sweep id");
    assert!(reused_report.failures.iter().any(|f| f.image == "broken.png"), "failed items come with the parts");
    Sweeps { first: first.sweep_id, plus: plus.sweep_id, full: full.sweep_id, reused_report }
}

/// A sweep of pairs all done before is done at submit, with no work; its id.
async fn done_at_submit(c: &Ctx, only_b: &Path, sweeps: &Sweeps) -> i64 {
    let b = c.submit(only_b, false).await;
    let st = c.store.sweep(b.sweep_id).await.unwrap();
    assert_eq!((st.state, st.done, st.total), (SweepState::Done, b.shards as i32, b.shards as i32), "done at submit");
    let b_report = c.report(b.sweep_id).await;
    let larger = sweeps.reused_report.csv();
    assert!(b_report.csv().lines().skip(1).all(|l| larger.contains(l)), "tiny_b's rows as the larger sweep has them");
    b.sweep_id
}

/// A wider crop grid (5x5 to 7x7): embed and radius are reused, crop is
/// widened from the newest sweep that holds it, inferring 41 of its 49 points
/// per image. One of the parts it takes rows from is damaged first: that
/// shard runs its whole grid, and nothing else changes. The report equals a
/// full run's of the wider grids.
async fn widened(c: &Ctx, wider: &Path, sweeps: &Sweeps, b: i64, logs: &Path) {
    let mut all_before = HashSet::new();
    for id in [sweeps.first, sweeps.plus, sweeps.full, b] {
        all_before.extend(c.keys(id).await.into_iter().map(|(_, k)| k));
    }
    let damaged = c.store.outputs(sweeps.full).await.unwrap().into_iter().find(|o| (o.model_idx, o.family_idx) == (1, 0)).unwrap();
    // A well-formed part with other classes: taken as it is, it would change the report.
    let mut rows = jagged_artifacts::decode(jagged_artifacts::get(c.objects.as_ref(), &damaged.object_key).await.unwrap()).unwrap();
    rows.iter_mut().for_each(|r| r.top1 = (r.top1 + 1) % 10);
    let altered = bytes::Bytes::from(jagged_artifacts::encode(&rows).unwrap());
    jagged_artifacts::put(c.objects.as_ref(), &damaged.object_key, altered).await.unwrap();
    let w = c.submit(wider, false).await;
    let resolved = c.store.resolved(w.sweep_id).await.unwrap();
    assert_eq!(resolved.spec.families.len(), 3);
    assert!(w.reused_shards > 0 && w.reused_shards < w.shards);
    let images = resolved.images.len() as u64;
    // (tiny_b's newest crop grid is the one `b` adopted from `full`: the same parts.)
    assert_eq!((w.widened_pairs, w.widened_from.clone()), (3, vec![sweeps.full, b]));
    assert_eq!((w.widened_inferences, w.widened_full), (3 * images * 41, 3 * images * 49));
    let st = wait(&c.url, w.sweep_id).await;
    assert_eq!(st.state, SweepState::Done);
    // The sweep counts the results it holds, taken or run.
    assert_eq!(st.inferences_total, w.reused_inferences as i64 + w.widened_full as i64);
    let outputs = c.store.outputs(w.sweep_id).await.unwrap();
    for o in &outputs {
        assert_eq!(all_before.contains(&o.object_key), o.family_idx != 0, "family {} shard {}", o.family_idx, o.shard_id);
    }
    // What the workers ran for each widened shard (their logs): 41 of each
    // image's 49 rows, but for the shard whose earlier part was altered.
    let logged = committed_inferences(logs);
    let (mut widened, mut whole) = (0, 0);
    for o in outputs.iter().filter(|o| o.family_idx == 0 && o.rows > 0) {
        let ran = logged[&o.shard_id];
        if ran * 49 == o.rows * 41 {
            widened += 1;
        } else {
            assert_eq!((o.model_idx, ran), (1, o.rows), "shard {}: {ran} inferences for {} rows", o.shard_id, o.rows);
            whole += 1;
        }
    }
    assert_eq!((widened, whole), (outputs.iter().filter(|o| o.family_idx == 0 && o.rows > 0).count() - 1, 1));
    let full_wider = c.submit(wider, true).await;
    assert_eq!((full_wider.reused_shards, full_wider.widened_pairs), (0, 0), "--again reuses nothing");
    wait(&c.url, full_wider.sweep_id).await;
    let widened_report = c.report(w.sweep_id).await;
    let full_report = c.report(full_wider.sweep_id).await;
    assert_eq!(widened_report.csv(), full_report.csv());
    assert_eq!(md(&widened_report, w.sweep_id), md(&full_report, full_wider.sweep_id), "the whole report, bar its sweep id");
}

/// Inferences each committed shard ran, by shard id, from the workers' logs.
fn committed_inferences(logs: &Path) -> std::collections::HashMap<i64, i64> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir(logs).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with("worker-") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| l.contains("shard committed")) {
            let field = |name: &str| -> i64 {
                let at = line.find(&format!(" {name}=")).unwrap_or_else(|| panic!("no `{name}` in {line}")) + name.len() + 2;
                line[at..].split(' ').next().unwrap().parse().unwrap()
            };
            out.insert(field("shard"), field("inferences"));
        }
    }
    out
}

/// A sweep that holds a (model, family) pair twice (a family listed twice, as
/// sweeps could before that was refused: stored here as such a jagged stored
/// it) is adopted once by a later sweep of the pair, and widened from once:
/// each report equals a full `--again` run's.
#[test]
fn a_pair_stored_twice_is_adopted_and_widened_once() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tiny_model(&dir.join("models"));
    dataset(&dir.join("data"), 4, 10, &[]);
    let spec = |shift: u32| {
        format!("name = \"twice\"\n[dataset]\npath = \"data\"\n[[models]]\npath = \"models/tiny_cnn.onnx\"\n[[families]]\nkind = \"crop\"\nmax_shift = {shift}\n[shard]\nimages = 2\n")
    };
    std::fs::write(dir.join("once.toml"), spec(1)).unwrap();
    std::fs::write(dir.join("wider.toml"), spec(2)).unwrap();
    let cluster = LocalCluster::start(cluster_options(&dir.join("run"), 1, 10_000)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Ctx::of(&cluster).await;
        // The family twice, stored and run.
        let mut twice = jagged_client::resolve::resolve(&dir.join("once.toml"), c.objects.as_ref()).await.unwrap().sweep;
        twice.spec.families.push(twice.spec.families[0].clone());
        assert!(twice.validate().is_err(), "refused at submit now");
        let keys = jagged_coordinator::pair_keys(&twice).unwrap();
        let shards = jagged_domain::plan::plan(&twice);
        let stored = c.store.insert_sweep_once("", &twice, &shards, None, &keys, false).await.unwrap();
        assert_eq!(wait(&c.url, stored.id).await.state, SweepState::Done);
        for (name, reused) in [("wider.toml", false), ("once.toml", true)] {
            let got = c.submit(&dir.join(name), false).await;
            assert_eq!(
                (got.reused_from.clone(), got.widened_from.clone()),
                if reused { (vec![stored.id], vec![]) } else { (vec![], vec![stored.id]) },
                "{name}"
            );
            let st = wait(&c.url, got.sweep_id).await;
            assert_eq!((st.state, st.done), (SweepState::Done, got.shards), "{name}: {st:?}");
            let full = c.submit(&dir.join(name), true).await;
            wait(&c.url, full.sweep_id).await;
            assert_eq!(c.report(got.sweep_id).await.csv(), c.report(full.sweep_id).await.csv(), "{name}");
        }
    });
    cluster.stop();
}
