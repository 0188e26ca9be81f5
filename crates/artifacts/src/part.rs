//! Rows to a Parquet part (snappy, with the Arrow writer) and back.

use crate::{schema, ArtifactError, Result, ResultRow};
use arrow_array::builder::{BooleanBuilder, Float32Builder, Int32Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

pub(crate) fn pq(e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Parquet(e.to_string())
}

/// What every part's writer starts from, worked out once per process: the
/// Arrow schema, its Parquet schema, and the writer's properties with the Arrow
/// schema already encoded into the file metadata (as the writer would add it to
/// every file). A small shard's part spent a third of its encoding time on them.
struct PartFormat {
    schema: SchemaRef,
    parquet: parquet::schema::types::SchemaDescriptor,
    props: WriterProperties,
}

fn part_format() -> Result<&'static PartFormat> {
    static FORMAT: std::sync::OnceLock<PartFormat> = std::sync::OnceLock::new();
    if let Some(f) = FORMAT.get() {
        return Ok(f);
    }
    let schema = schema();
    let parquet = parquet::arrow::ArrowSchemaConverter::new().convert(&schema).map_err(pq)?;
    // No dictionaries or statistics: nothing reads the statistics, and both
    // cost more than half the encoding time of a small shard's part (a few
    // percent more bytes on large ones).
    let mut props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .build();
    parquet::arrow::add_encoded_arrow_schema_to_metadata(&schema, &mut props);
    Ok(FORMAT.get_or_init(|| PartFormat { schema, parquet, props }))
}

/// Encodes rows as one Parquet file (snappy), with the Arrow writer.
pub fn encode(rows: &[ResultRow]) -> Result<Vec<u8>> {
    let format = part_format()?;
    let schema = format.schema.clone();
    macro_rules! col {
        ($ty:ident, $f:expr) => {
            Arc::new($ty::from(rows.iter().map($f).collect::<Vec<_>>())) as ArrayRef
        };
    }
    let mut c5 = ListBuilder::new(Int32Builder::new());
    let mut p5 = ListBuilder::new(Float32Builder::new());
    let mut probs = ListBuilder::new(Float32Builder::new());
    for r in rows {
        c5.values().append_slice(&r.top5_class);
        c5.append(true);
        p5.values().append_slice(&r.top5_prob);
        p5.append(true);
        match &r.probs {
            Some(p) => {
                probs.values().append_slice(p);
                probs.append(true);
            }
            None => probs.append(false),
        }
    }
    let mut refb = BooleanBuilder::new();
    rows.iter().for_each(|r| refb.append_value(r.is_reference));
    let cols: Vec<ArrayRef> = vec![
        col!(Int64Array, |r| r.sweep_id),
        col!(Int64Array, |r| r.shard_id),
        col!(Int32Array, |r| r.attempt),
        col!(StringArray, |r| r.model.as_str()),
        col!(StringArray, |r| r.family.as_str()),
        col!(Int32Array, |r| r.family_index),
        col!(Int32Array, |r| r.image_index),
        col!(StringArray, |r| r.image_name.as_str()),
        col!(Int32Array, |r| r.label),
        col!(Int32Array, |r| r.point),
        col!(Float32Array, |r| r.dx),
        col!(Float32Array, |r| r.dy),
        col!(Float32Array, |r| r.scale),
        col!(Float32Array, |r| r.angle),
        Arc::new(refb.finish()),
        col!(Int32Array, |r| r.top1),
        Arc::new(c5.finish()),
        Arc::new(p5.finish()),
        col!(Float32Array, |r| r.p_label),
        col!(Float32Array, |r| r.p_ref_top1),
        col!(Int32Array, |r| r.fwd_pairs),
        col!(Int32Array, |r| r.fwd_top1_changes),
        col!(Float64Array, |r| r.fwd_abs_diff),
        col!(Int32Array, |r| r.fwd_top5_transitions),
        col!(Int32Array, |r| r.fwd_top5_dist),
        col!(StringArray, |r| r.provider.as_str()),
        col!(StringArray, |r| r.precision.as_str()),
        Arc::new(probs.finish()),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.layers.as_ref().map(|l| serde_json::to_string(l).expect("plain data"))).collect::<Vec<_>>(),
        )),
        col!(StringArray, |r| r.render.as_str()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(pq)?;
    let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new()
        .with_properties(format.props.clone())
        .with_parquet_schema(format.parquet.clone())
        // Already in the properties' metadata.
        .with_skip_arrow_metadata(true);
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new_with_options(&mut buf, schema, options).map_err(pq)?;
    w.write(&batch).map_err(pq)?;
    w.close().map_err(pq)?;
    Ok(buf)
}

/// An offset column: float32, or int32 in parts written before sub-pixel grids.
fn offsets(b: &RecordBatch, name: &str) -> Result<Vec<f32>> {
    match b.column_by_name(name).map(|c| c.data_type()) {
        Some(DataType::Int32) => Ok(typed::<Int32Array>(b, name)?.values().iter().map(|&v| v as f32).collect()),
        _ => Ok(typed::<Float32Array>(b, name)?.values().to_vec()),
    }
}

pub(crate) fn typed<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArtifactError::Parquet(format!("column `{name}` is missing or has the wrong type")))
}

pub(crate) fn list_values<T: Copy + 'static, A: Array + 'static>(l: &ListArray, i: usize, get: impl Fn(&A, usize) -> T) -> Result<Vec<T>> {
    let v = l.value(i);
    let a = v.as_any().downcast_ref::<A>().ok_or_else(|| ArtifactError::Parquet("list item type".into()))?;
    Ok((0..a.len()).map(|j| get(a, j)).collect())
}

/// Decodes a result part into rows.
pub fn decode(bytes: Bytes) -> Result<Vec<ResultRow>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(pq)?.with_batch_size(8192).build().map_err(pq)?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.map_err(pq)?;
        let i64c = |n| typed::<Int64Array>(&b, n);
        let i32c = |n| typed::<Int32Array>(&b, n);
        let strc = |n| typed::<StringArray>(&b, n);
        let (sweep, shard, attempt) = (i64c("sweep_id")?, i64c("shard_id")?, i32c("attempt")?);
        let (model, family, fidx) = (strc("model")?, strc("family")?, i32c("family_index")?);
        let (img, name, label, point) = (i32c("image_index")?, strc("image_name")?, i32c("label")?, i32c("point")?);
        let (dx, dy, isref, top1) = (offsets(&b, "dx")?, offsets(&b, "dy")?, typed::<BooleanArray>(&b, "is_reference")?, i32c("top1")?);
        let (scale, angle) = (typed::<Float32Array>(&b, "scale")?, typed::<Float32Array>(&b, "angle")?);
        let (c5, p5) = (typed::<ListArray>(&b, "top5_class")?, typed::<ListArray>(&b, "top5_prob")?);
        let (pl, pr) = (typed::<Float32Array>(&b, "p_label")?, typed::<Float32Array>(&b, "p_ref_top1")?);
        let (fp, fc, fd, ft) =
            (i32c("fwd_pairs")?, i32c("fwd_top1_changes")?, typed::<Float64Array>(&b, "fwd_abs_diff")?, i32c("fwd_top5_transitions")?);
        let t5d = i32c("fwd_top5_dist")?;
        let (prov, prec, probs) = (strc("provider")?, strc("precision")?, typed::<ListArray>(&b, "probs")?);
        // Parts written before per-layer sweeps have no `layers` column.
        let layers = b.column_by_name("layers").and_then(|c| c.as_any().downcast_ref::<StringArray>());
        // Parts written before rendering in the graph have no `render` column.
        let render = b.column_by_name("render").and_then(|c| c.as_any().downcast_ref::<StringArray>());
        for i in 0..b.num_rows() {
            out.push(ResultRow {
                sweep_id: sweep.value(i),
                shard_id: shard.value(i),
                attempt: attempt.value(i),
                model: model.value(i).to_string(),
                family: family.value(i).to_string(),
                family_index: fidx.value(i),
                image_index: img.value(i),
                image_name: name.value(i).to_string(),
                label: label.is_valid(i).then(|| label.value(i)),
                point: point.value(i),
                dx: dx[i],
                dy: dy[i],
                scale: scale.value(i),
                angle: angle.value(i),
                is_reference: isref.value(i),
                top1: top1.value(i),
                top5_class: list_values::<i32, Int32Array>(c5, i, |a, j| a.value(j))?,
                top5_prob: list_values::<f32, Float32Array>(p5, i, |a, j| a.value(j))?,
                p_label: pl.is_valid(i).then(|| pl.value(i)),
                p_ref_top1: pr.value(i),
                fwd_pairs: fp.value(i),
                fwd_top1_changes: fc.value(i),
                fwd_abs_diff: fd.value(i),
                fwd_top5_transitions: ft.value(i),
                fwd_top5_dist: t5d.value(i),
                provider: prov.value(i).to_string(),
                precision: prec.value(i).to_string(),
                render: render.map(|r| r.value(i).to_string()).unwrap_or_else(|| "host".into()),
                probs: if probs.is_valid(i) { Some(list_values::<f32, Float32Array>(probs, i, |a, j| a.value(j))?) } else { None },
                layers: match layers {
                    Some(l) if l.is_valid(i) => Some(serde_json::from_str(l.value(i)).map_err(|e| pq(format!("column `layers`: {e}")))?),
                    _ => None,
                },
            });
        }
    }
    Ok(out)
}
