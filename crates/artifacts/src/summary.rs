//! The columns a report folds, read alone from a part.

use crate::part::{pq, typed};
use crate::{ArtifactError, Result};
use arrow_array::{Array, BooleanArray, Float32Array, Float64Array, Int32Array, ListArray};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The columns a summary needs, read from a part without the others (no
/// strings, no probability vectors): for the report's aggregation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SummaryColumns {
    /// Image index per row.
    pub image_index: Vec<i32>,
    /// True class per row; [`NO_LABEL`] when unlabelled.
    pub label: Vec<i32>,
    /// Reference point flag per row.
    pub is_reference: Vec<bool>,
    /// Top-5 classes of row `i`: `top5[top5_offsets[i]..top5_offsets[i + 1]]`.
    pub top5: Vec<i32>,
    /// See `top5`.
    pub top5_offsets: Vec<usize>,
    /// Grid point index per row.
    pub point: Vec<i32>,
    /// p(true class) per row; NaN when unlabelled.
    pub p_label: Vec<f32>,
    /// Forward pairs per row.
    pub fwd_pairs: Vec<i32>,
    /// Forward pairs with a changed argmax.
    pub fwd_top1_changes: Vec<i32>,
    /// Sum of |p_c(x) - p_c(x')| over forward pairs.
    pub fwd_abs_diff: Vec<f64>,
    /// Forward top-5 border crossings of the true class.
    pub fwd_top5_transitions: Vec<i32>,
    /// Sum of top-5 distances over forward pairs.
    pub fwd_top5_dist: Vec<i32>,
}

/// [`SummaryColumns::label`] of an unlabelled row.
pub const NO_LABEL: i32 = i32::MIN;

impl SummaryColumns {
    /// Rows.
    pub fn len(&self) -> usize {
        self.image_index.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.image_index.is_empty()
    }
}

/// Reads the [`SummaryColumns`] of a part.
pub fn decode_summary(bytes: Bytes) -> Result<SummaryColumns> {
    const COLUMNS: [&str; 11] = [
        "image_index",
        "label",
        "is_reference",
        "top5_class",
        "point",
        "p_label",
        "fwd_pairs",
        "fwd_top1_changes",
        "fwd_abs_diff",
        "fwd_top5_transitions",
        "fwd_top5_dist",
    ];
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(pq)?;
    let n = builder.metadata().file_metadata().num_rows().max(0) as usize;
    let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), COLUMNS);
    let reader = builder.with_projection(mask).with_batch_size(65536).build().map_err(pq)?;
    let mut out = SummaryColumns { top5_offsets: Vec::with_capacity(n + 1), ..Default::default() };
    out.top5_offsets.push(0);
    for batch in reader {
        let b = batch.map_err(pq)?;
        let i32s = |name: &str, v: &mut Vec<i32>| -> Result<()> {
            v.extend_from_slice(typed::<Int32Array>(&b, name)?.values());
            Ok(())
        };
        i32s("image_index", &mut out.image_index)?;
        i32s("point", &mut out.point)?;
        i32s("fwd_pairs", &mut out.fwd_pairs)?;
        i32s("fwd_top1_changes", &mut out.fwd_top1_changes)?;
        i32s("fwd_top5_transitions", &mut out.fwd_top5_transitions)?;
        i32s("fwd_top5_dist", &mut out.fwd_top5_dist)?;
        out.fwd_abs_diff.extend_from_slice(typed::<Float64Array>(&b, "fwd_abs_diff")?.values());
        let label = typed::<Int32Array>(&b, "label")?;
        out.label.extend((0..label.len()).map(|i| if label.is_valid(i) { label.value(i) } else { NO_LABEL }));
        let pl = typed::<Float32Array>(&b, "p_label")?;
        out.p_label.extend((0..pl.len()).map(|i| if pl.is_valid(i) { pl.value(i) } else { f32::NAN }));
        let r = typed::<BooleanArray>(&b, "is_reference")?;
        out.is_reference.extend(r.values().iter());
        let c5 = typed::<ListArray>(&b, "top5_class")?;
        let values = c5.values().as_any().downcast_ref::<Int32Array>().ok_or_else(|| ArtifactError::Parquet("top5_class item type".into()))?;
        let offsets = c5.value_offsets();
        let base = out.top5.len();
        let (lo, hi) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
        out.top5.extend_from_slice(&values.values()[lo..hi]);
        out.top5_offsets.extend(offsets[1..].iter().map(|&o| base + o as usize - lo));
    }
    Ok(out)
}
