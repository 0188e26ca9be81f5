//! Building a sweep's report from its committed parts.

use crate::fold::RowFold;
use crate::layers::LayerFold;
use crate::radius::RadiusFold;
use crate::{Failure, NormalisedModel, NormalisedTable, Report, ReportError, TableRow};
use futures::StreamExt;
use jagged_domain::metrics::{normalised, table::metric};
use jagged_domain::spec::ResolvedSweep;
use jagged_domain::transform::{Extra, Family};
use jagged_store::Store;
use object_store::ObjectStore;
use std::collections::BTreeMap;

/// Builds the report of a sweep from its committed parts, reading and folding
/// parts on all cores.
pub async fn build(store: &Store, objects: &dyn ObjectStore, sweep_id: i64) -> Result<Report, ReportError> {
    build_with(store, objects, sweep_id, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).await
}

/// [`build`] with `threads` parts read and folded at a time. Parts are folded
/// independently and merged in shard order, so the result does not depend on
/// `threads`.
pub async fn build_with(store: &Store, objects: &dyn ObjectStore, sweep_id: i64, threads: usize) -> Result<Report, ReportError> {
    let prices = store.prices(sweep_id).await?;
    build_full(store, objects, sweep_id, threads, &prices).await
}

/// [`build`] with the cost estimated from `prices` (per device-hour by device
/// kind) instead of those given at the sweep's submit.
pub async fn build_priced(
    store: &Store,
    objects: &dyn ObjectStore,
    sweep_id: i64,
    prices: &jagged_domain::cost::Prices,
) -> Result<Report, ReportError> {
    build_full(store, objects, sweep_id, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), prices).await
}

async fn build_full(
    store: &Store,
    objects: &dyn ObjectStore,
    sweep_id: i64,
    threads: usize,
    prices: &jagged_domain::cost::Prices,
) -> Result<Report, ReportError> {
    let sweep = store.sweep(sweep_id).await?;
    let cost = store.spent(sweep_id).await?;
    let provenance = store.provenance(sweep_id).await?;
    let resolved = std::sync::Arc::new(store.resolved(sweep_id).await?);
    let outputs = store.outputs(sweep_id).await?;
    let mut folds = Folds::new(&resolved);
    folds.read(objects, &resolved, outputs, threads).await?;
    let failures = failures(store, sweep_id, &resolved, &mut folds).await?;
    let figures = folds.rows.values().map(|f| f.figure.clone()).collect();
    let names = |m: usize, f: usize| names(&resolved, m, f);
    let radius = folds
        .radius
        .into_iter()
        .map(|((m, f), fold)| {
            let max = match resolved.spec.families.get(f).map(Family::extra) {
                Some(Extra::Radius(max_radius)) => max_radius,
                _ => 0,
            };
            fold.finish(&names(m, f).0, &resolved.spec.family_label(f), max)
        })
        .collect();
    let layers = folds
        .layers
        .into_iter()
        .filter_map(|((m, f), fold)| fold.finish(&names(m, f).0, &resolved.spec.family_label(f), resolved.models.get(m).and_then(|x| x.structure)))
        .collect();
    let rows: Vec<TableRow> = folds.rows.into_iter().map(|((m, f), fold)| table_row(&resolved, m, f, fold)).collect();
    let normalised = resolved.spec.metrics.baseline.as_ref().map(|b| normalised_table(&resolved, &rows, b));
    Ok(Report {
        sweep,
        rows,
        failures,
        published: resolved.spec.published.clone(),
        figures,
        normalised,
        layers,
        radius,
        cost,
        prices: prices.clone(),
        models: resolved.models.iter().map(|m| m.name.clone()).collect(),
        protocol: crate::protocol::card(&resolved, &provenance),
    })
}

/// A (model, family) pair's model and family names.
fn names(resolved: &ResolvedSweep, m: usize, f: usize) -> (String, String) {
    (
        resolved.models.get(m).map(|x| x.name.clone()).unwrap_or_default(),
        resolved.spec.families.get(f).map(|x| x.name().to_string()).unwrap_or_default(),
    )
}

/// The summary row of one (model, family) pair.
fn table_row(resolved: &ResolvedSweep, m: usize, f: usize, fold: RowFold) -> TableRow {
    let (model, family) = names(resolved, m, f);
    let (totals, intervals) = fold.finish();
    TableRow {
        family_label: resolved.spec.family_label(f),
        model,
        family,
        family_index: f,
        figures: resolved.spec.families.get(f).map(Family::figures).unwrap_or(jagged_domain::transform::Figures::HEATMAP),
        untrained: resolved.models.get(m).is_some_and(|x| x.card.untrained),
        structure: resolved.models.get(m).and_then(|x| x.structure),
        totals,
        intervals,
    }
}

/// Every (model, family) pair's folds: the summary's, and the per-layer and
/// radius folds of the families that need them.
struct Folds {
    rows: BTreeMap<(usize, usize), RowFold>,
    layers: BTreeMap<(usize, usize), LayerFold>,
    radius: BTreeMap<(usize, usize), RadiusFold>,
}

impl Folds {
    fn new(resolved: &ResolvedSweep) -> Folds {
        let mut folds = Folds { rows: BTreeMap::new(), layers: BTreeMap::new(), radius: BTreeMap::new() };
        for m in 0..resolved.models.len() {
            for (f, fam) in resolved.spec.families.iter().enumerate() {
                folds.rows.insert((m, f), RowFold::new(fam));
                if matches!(fam.extra(), Extra::Radius(_)) {
                    folds.radius.insert((m, f), RadiusFold::default());
                }
            }
        }
        folds
    }

    /// Reads and folds every committed part, `threads` at a time, merged in
    /// shard order.
    async fn read(
        &mut self,
        objects: &dyn ObjectStore,
        resolved: &std::sync::Arc<ResolvedSweep>,
        outputs: Vec<jagged_store::CommittedOutput>,
        threads: usize,
    ) -> Result<(), ReportError> {
        let mut parts = futures::stream::iter(outputs.into_iter().map(|o| {
            let resolved = resolved.clone();
            async move {
                let bytes = jagged_artifacts::get(objects, &o.object_key).await?;
                let key = (o.model_idx as usize, o.family_idx as usize);
                let folded = tokio::task::spawn_blocking(move || fold_part(bytes, &o, &resolved))
                    .await
                    .map_err(|e| ReportError::Io("folding a part".into(), std::io::Error::other(e.to_string())))??;
                Ok::<_, ReportError>((key, folded))
            }
        }))
        .buffered(threads.max(1));
        while let Some(part) = parts.next().await {
            let (key, (fold, layers, radius)) = part?;
            if let Some(l) = layers {
                self.layers.entry(key).or_default().merge(l);
            }
            if let Some(r) = radius {
                self.radius.entry(key).or_default().merge(r);
            }
            match self.rows.get_mut(&key) {
                Some(f) => f.merge(fold),
                None => {
                    self.rows.insert(key, fold);
                }
            }
        }
        Ok(())
    }
}

/// One part's folds, its checksum checked: the summary's, and (for the
/// families that need them) its per-layer errors or its points' top-1s.
fn fold_part(
    bytes: bytes::Bytes,
    o: &jagged_store::CommittedOutput,
    resolved: &ResolvedSweep,
) -> Result<(RowFold, Option<LayerFold>, Option<RadiusFold>), ReportError> {
    if jagged_artifacts::sha256_hex(&bytes) != o.sha256 {
        return Err(ReportError::Checksum(o.object_key.clone()));
    }
    let f = o.family_idx as usize;
    let family = resolved.spec.families.get(f).ok_or_else(|| ReportError::Orphan(o.object_key.clone()))?;
    // Full rows are read only where the family needs them: per-layer errors,
    // and the top-1 of every point of an adaptive search.
    let (mut layers, mut radius) = (None, None);
    match family.extra() {
        Extra::Layers => {
            let mut l = LayerFold::default();
            l.add_rows(&jagged_artifacts::decode(bytes.clone())?);
            layers = Some(l);
        }
        Extra::Radius(_) => {
            let mut r = RadiusFold::default();
            r.add_rows(&jagged_artifacts::decode(bytes.clone())?);
            radius = Some(r);
        }
        Extra::None => {}
    }
    let cols = jagged_artifacts::decode_summary(bytes)?;
    let mut fold = RowFold::new(family);
    // A radius family's summary row is its first ring (the parts with the
    // reference); later rings hold only the images still searched.
    if radius.is_none() || cols.is_reference.iter().any(|&r| r) {
        fold.add_part(&cols, resolved.items(f));
    }
    Ok((fold, layers, radius))
}

/// The items that failed, and the images of failed shards, each counted into
/// its pair's fold.
async fn failures(store: &Store, sweep_id: i64, resolved: &ResolvedSweep, folds: &mut Folds) -> Result<Vec<Failure>, ReportError> {
    let mut failures = Vec::new();
    for f in store.failed_items(sweep_id).await? {
        let key = (f.model_idx as usize, f.family_idx as usize);
        if let Some(f) = folds.rows.get_mut(&key) {
            f.totals.failed_items += 1;
        }
        let (model, family) = names(resolved, key.0, key.1);
        failures.push(Failure { model, family, image: f.item.name, reason: f.item.reason });
    }
    for s in store.shard_errors(sweep_id, i64::MAX).await? {
        let key = (s.model_idx as usize, s.family_idx as usize);
        if let Some(f) = folds.rows.get_mut(&key) {
            f.totals.failed_items += (s.image_hi - s.image_lo) as u64;
        }
        let (model, family) = names(resolved, key.0, key.1);
        for i in s.image_lo..s.image_hi {
            let image = resolved.items(key.1).get(i as usize).map(|x| x.name.clone()).unwrap_or_default();
            failures.push(Failure {
                model: model.clone(),
                family: family.clone(),
                image,
                reason: format!("shard {} failed: {}", s.shard_id, s.error),
            });
        }
    }
    Ok(failures)
}

/// The mFR / mT5D table over the families the spec selects (default: all but
/// `random_pairs`).
fn normalised_table(resolved: &ResolvedSweep, rows: &[TableRow], baseline: &str) -> NormalisedTable {
    let fams = &resolved.spec.families;
    let chosen: Vec<usize> = (0..fams.len())
        .filter(|&f| match &resolved.spec.metrics.families {
            Some(sel) => sel.iter().any(|s| resolved.spec.selects(s, f)),
            None => fams[f].normalised_by_default(),
        })
        .collect();
    let (fp, t5d) = (metric("flip_prob").expect("in the metric table"), metric("top5_dist").expect("in the metric table"));
    let values = |model: &str| -> Vec<(Option<f64>, Option<f64>)> {
        chosen
            .iter()
            .map(|&f| {
                rows.iter()
                    .find(|r| r.model == model && r.family_index == f)
                    .map(|r| (fp.of(&r.family, &r.totals), t5d.of(&r.family, &r.totals)))
                    .unwrap_or((None, None))
            })
            .collect()
    };
    let base = values(baseline);
    let families = chosen.iter().map(|&f| rows.iter().find(|r| r.family_index == f).map(|r| r.family_label.clone()).unwrap_or_default()).collect();
    let models = resolved.models.iter().map(|m| NormalisedModel { model: m.name.clone(), ratios: normalised(&values(&m.name), &base) }).collect();
    NormalisedTable { baseline: baseline.to_string(), families, models }
}
