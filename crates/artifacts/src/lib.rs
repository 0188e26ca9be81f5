//! Object keys and result files.
//!
//! Layout inside the object store (a local folder or a bucket):
//! - `blobs/sha256/<hex>`: models and images, content-addressed, uploaded at submit.
//! - `sweeps/<sweep>/parts/shard-<shard>-attempt-<a>-epoch-<e>.parquet`: one result
//!   part per shard attempt. Keys are attempt-specific, so a late or zombie writer
//!   can never overwrite the file that was committed; only the key recorded in
//!   PostgreSQL counts.
//!
//! The part schema is [`schema`], documented column by column in `docs/results.md`.
#![deny(missing_docs)]

use arrow_array::builder::{BooleanBuilder, Float32Builder, Int32Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Errors of storage and result files.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A result file could not be written or read.
    #[error("result file: {0}")]
    Parquet(String),
    /// A store URL is not understood.
    #[error("store url `{0}`: {1}")]
    Url(String, String),
}

type Result<T> = std::result::Result<T, ArtifactError>;

/// Opens an object store from a URL: `file:///abs/dir` or a plain path (a local
/// folder, created if missing), or `s3://bucket[/prefix]` (S3 or an S3-compatible
/// server; settings from the standard variables `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (default `us-east-1`) and `AWS_ENDPOINT`
/// (e.g. `http://127.0.0.1:8333`; plain HTTP is allowed for such an endpoint).
/// Transient errors are retried with backoff for up to [`S3_RETRY_SECS`] seconds.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>> {
    open_store_with(url, &[])
}

/// [`open_store`] with S3 settings given as (variable, value) pairs, e.g.
/// `("AWS_ENDPOINT", "http://127.0.0.1:8333")`, taking precedence over the
/// environment.
pub fn open_store_with(url: &str, vars: &[(String, String)]) -> Result<Arc<dyn ObjectStore>> {
    let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).or_else(|| std::env::var(k).ok());
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ArtifactError::Url(url.into(), "no bucket named".into()));
        }
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: std::time::Duration::from_millis(100),
                max_backoff: std::time::Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 100,
            retry_timeout: std::time::Duration::from_secs(S3_RETRY_SECS),
        });
        if var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).is_none() {
            b = b.with_region("us-east-1");
        }
        for (k, v) in vars {
            let key: object_store::aws::AmazonS3ConfigKey =
                k.to_ascii_lowercase().parse().map_err(|e: object_store::Error| ArtifactError::Url(url.into(), e.to_string()))?;
            b = b.with_config(key, v);
        }
        if var("AWS_ENDPOINT").or_else(|| var("AWS_ENDPOINT_URL")).is_some_and(|e| e.starts_with("http://")) {
            b = b.with_allow_http(true);
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(b.build().map_err(ArtifactError::Store)?);
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() { s3 } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) });
    }
    let path = if let Some(rest) = url.strip_prefix("file://") {
        rest.to_string()
    } else if url.contains("://") {
        return Err(ArtifactError::Url(url.into(), "only s3://, file:// and local paths are supported".into()));
    } else {
        url.to_string()
    };
    std::fs::create_dir_all(&path).map_err(|e| ArtifactError::Url(url.into(), e.to_string()))?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(ArtifactError::Store)?;
    Ok(Arc::new(fs))
}

/// How long an S3 request is retried through transient errors (an outage of the
/// server) before it fails.
pub const S3_RETRY_SECS: u64 = 120;

/// Whether a store is a local folder, whose calls made outside an async
/// runtime run on the calling thread (the worker's compute thread reads images
/// and writes parts on it directly).
pub fn is_local(store: &dyn ObjectStore) -> bool {
    store.to_string().starts_with("LocalFileSystem(")
}

/// The folder of a local store; `None` for a bucket.
pub fn local_folder(store: &dyn ObjectStore) -> Option<std::path::PathBuf> {
    let shown = store.to_string();
    let root = shown.strip_prefix("LocalFileSystem(")?.strip_suffix(')')?;
    url::Url::parse(root).ok()?.to_file_path().ok()
}

/// Writes a result part into a local store's folder under its final name, the
/// folders above made when missing: no staging file and rename, as a store's
/// `put` makes, since a part's key is its attempt's and epoch's own and only a
/// committed part (whose checksum PostgreSQL holds) is ever read. A write cut
/// short leaves an incomplete file that nothing commits.
pub fn put_local(folder: &std::path::Path, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    if key.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a plain key: `{key}`")));
    }
    let path = folder.join(key);
    match std::fs::write(&path, bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().unwrap_or(folder))?;
            std::fs::write(&path, bytes)
        }
        r => r,
    }
}

/// Objects larger than this are uploaded in parts (multipart upload).
pub const MULTIPART_BYTES: usize = 8 * 1024 * 1024;

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Content-addressed key of a blob.
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/sha256/{sha256}")
}

pub use jagged_domain::keys::part_key;

/// Stores bytes under their content key unless already there; returns the key.
pub async fn put_blob(store: &dyn ObjectStore, bytes: Bytes) -> Result<String> {
    let key = blob_key(&sha256_hex(&bytes));
    let path = ObjPath::from(key.as_str());
    match store.head(&path).await {
        Ok(_) => return Ok(key),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    store.put(&path, PutPayload::from(bytes)).await?;
    Ok(key)
}

/// Reads a whole object.
pub async fn get(store: &dyn ObjectStore, key: &str) -> Result<Bytes> {
    Ok(store.get(&ObjPath::from(key)).await?.bytes().await?)
}

/// Writes a whole object.
pub async fn put(store: &dyn ObjectStore, key: &str, bytes: Bytes) -> Result<()> {
    let path = ObjPath::from(key);
    // A local folder takes any size at once (and its multipart upload needs
    // an async runtime, which the worker's compute thread is not in).
    if bytes.len() <= MULTIPART_BYTES || is_local(store) {
        store.put(&path, PutPayload::from(bytes)).await?;
        return Ok(());
    }
    // Large parts go up in 8 MiB pieces, at most 4 in flight.
    let upload = store.put_multipart(&path).await?;
    let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_BYTES);
    for chunk in bytes.chunks(MULTIPART_BYTES) {
        w.wait_for_capacity(4).await?;
        w.write(chunk);
    }
    w.finish().await?;
    Ok(())
}

/// One result row: one grid point of one image under one model and family.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    /// Sweep id.
    pub sweep_id: i64,
    /// Shard id.
    pub shard_id: i64,
    /// Attempt that wrote the row.
    pub attempt: i32,
    /// Model name.
    pub model: String,
    /// Family name (`crop`, `embed`, `diagonal`).
    pub family: String,
    /// Index of the family in the spec.
    pub family_index: i32,
    /// Image index in the sweep.
    pub image_index: i32,
    /// Image name (path relative to the dataset root).
    pub image_name: String,
    /// True class, if labelled.
    pub label: Option<i32>,
    /// Grid point index.
    pub point: i32,
    /// Horizontal offset in pixels (fractional on sub-pixel grids).
    pub dx: f32,
    /// Vertical offset in pixels.
    pub dy: f32,
    /// Scale factor of the point (1 when the family does not scale).
    pub scale: f32,
    /// Rotation of the point in degrees (0 when the family does not rotate).
    pub angle: f32,
    /// Whether this is the family's reference point.
    pub is_reference: bool,
    /// argmax.
    pub top1: i32,
    /// Top-5 classes, descending probability.
    pub top5_class: Vec<i32>,
    /// Their probabilities.
    pub top5_prob: Vec<f32>,
    /// p(true class).
    pub p_label: Option<f32>,
    /// p(argmax class of the reference point).
    pub p_ref_top1: f32,
    /// Neighbour pairs whose first point is this one.
    pub fwd_pairs: i32,
    /// Of those, pairs with a different argmax.
    pub fwd_top1_changes: i32,
    /// Sum over those pairs of |p_c(x) - p_c(x')|, c = argmax p(x).
    pub fwd_abs_diff: f64,
    /// Of those, pairs where the true class enters or leaves the top-5.
    pub fwd_top5_transitions: i32,
    /// Sum over those pairs of ImageNet-P's top-5 distance.
    pub fwd_top5_dist: i32,
    /// Execution provider (`cpu`, `cuda`).
    pub provider: String,
    /// Numeric precision (`fp32`).
    pub precision: String,
    /// Where the input was rendered: `host`, or `graph` (inside the model's
    /// graph, by ONNX Runtime on its device); `host` in parts written before.
    pub render: String,
    /// Full probability vector, when the spec asks for it.
    pub probs: Option<Vec<f32>>,
    /// Per-layer errors of this point against the reference, one per probed
    /// node in graph order (`layers` family only).
    pub layers: Option<Vec<LayerError>>,
}

pub use jagged_domain::metrics::equivariance::LayerError;

/// The Arrow schema of result parts.
pub fn schema() -> SchemaRef {
    let list_i32 = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let list_f32 = DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
    Arc::new(Schema::new(vec![
        Field::new("sweep_id", DataType::Int64, false),
        Field::new("shard_id", DataType::Int64, false),
        Field::new("attempt", DataType::Int32, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("family", DataType::Utf8, false),
        Field::new("family_index", DataType::Int32, false),
        Field::new("image_index", DataType::Int32, false),
        Field::new("image_name", DataType::Utf8, false),
        Field::new("label", DataType::Int32, true),
        Field::new("point", DataType::Int32, false),
        Field::new("dx", DataType::Float32, false),
        Field::new("dy", DataType::Float32, false),
        Field::new("scale", DataType::Float32, false),
        Field::new("angle", DataType::Float32, false),
        Field::new("is_reference", DataType::Boolean, false),
        Field::new("top1", DataType::Int32, false),
        Field::new("top5_class", list_i32, false),
        Field::new("top5_prob", list_f32.clone(), false),
        Field::new("p_label", DataType::Float32, true),
        Field::new("p_ref_top1", DataType::Float32, false),
        Field::new("fwd_pairs", DataType::Int32, false),
        Field::new("fwd_top1_changes", DataType::Int32, false),
        Field::new("fwd_abs_diff", DataType::Float64, false),
        Field::new("fwd_top5_transitions", DataType::Int32, false),
        Field::new("fwd_top5_dist", DataType::Int32, false),
        Field::new("provider", DataType::Utf8, false),
        Field::new("precision", DataType::Utf8, false),
        Field::new("probs", list_f32, true),
        Field::new("layers", DataType::Utf8, true),
        Field::new("render", DataType::Utf8, false),
    ]))
}

fn pq(e: impl std::fmt::Display) -> ArtifactError {
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

fn typed<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ArtifactError::Parquet(format!("column `{name}` is missing or has the wrong type")))
}

fn list_values<T: Copy + 'static, A: Array + 'static>(l: &ListArray, i: usize, get: impl Fn(&A, usize) -> T) -> Result<Vec<T>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i32, probs: Option<Vec<f32>>) -> ResultRow {
        ResultRow {
            sweep_id: 1,
            shard_id: 2,
            attempt: 1,
            model: "m".into(),
            family: "crop".into(),
            family_index: 0,
            image_index: i,
            image_name: format!("{i}.png"),
            label: if i % 2 == 0 { Some(3) } else { None },
            point: i,
            dx: -i as f32 * 0.5,
            dy: i as f32,
            scale: 1.0,
            angle: 0.5 * i as f32,
            is_reference: i == 0,
            top1: 3,
            top5_class: vec![3, 1, 2, 0, 4],
            top5_prob: vec![0.5, 0.2, 0.1, 0.1, 0.05],
            p_label: if i % 2 == 0 { Some(0.5) } else { None },
            p_ref_top1: 0.5,
            fwd_pairs: 2,
            fwd_top1_changes: 1,
            fwd_abs_diff: 0.25,
            fwd_top5_transitions: 0,
            fwd_top5_dist: 3,
            provider: "cpu".into(),
            precision: "fp32".into(),
            render: "host".into(),
            probs,
            layers: None,
        }
    }

    #[test]
    fn parts_round_trip() {
        let mut rows: Vec<ResultRow> = (0..5).map(|i| row(i, if i == 1 { Some(vec![0.1, 0.9]) } else { None })).collect();
        rows[2].layers = Some(vec![
            LayerError { node: "conv_1".into(), op: "Conv".into(), factor: 2, blurred: true, error: Some(0.25) },
            LayerError { node: "pool".into(), op: "GlobalAveragePool".into(), factor: 0, blurred: false, error: None },
        ]);
        let bytes = encode(&rows).unwrap();
        assert_eq!(decode(Bytes::from(bytes)).unwrap(), rows);
    }

    #[test]
    fn parts_are_the_files_a_plain_arrow_writer_gives() {
        // The writer's setup is worked out once per process; the files must be
        // those the writer makes from scratch, the Arrow schema in their metadata.
        let rows: Vec<ResultRow> = (0..3).map(|i| row(i, if i == 1 { Some(vec![0.25, 0.75]) } else { None })).collect();
        let ours = encode(&rows).unwrap();
        let again = encode(&rows).unwrap();
        let plain = {
            let batch = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(ours.clone())).unwrap().build().unwrap().next().unwrap().unwrap();
            let props = WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
                .set_dictionary_enabled(false)
                .build();
            let mut buf = Vec::new();
            let mut w = ArrowWriter::try_new(&mut buf, schema(), Some(props)).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            buf
        };
        assert_eq!(ours, again);
        assert_eq!(ours, plain);
        let meta = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(ours)).unwrap();
        let kv = meta.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
        assert!(kv.iter().any(|k| k.key == parquet::arrow::ARROW_SCHEMA_META_KEY), "{kv:?}");
    }

    /// Rows of every shape a part holds: nulls, empty and long lists,
    /// probability vectors on some rows, per-layer errors, non-ASCII names.
    fn varied(n: i32) -> Vec<ResultRow> {
        (0..n)
            .map(|i| {
                let mut r = row(i, (i % 3 == 1).then(|| (0..(i % 7) as usize).map(|k| k as f32 / 7.0).collect()));
                r.image_name = format!("dossier/é{i}.png");
                r.top5_class = (0..(i % 6)).collect();
                r.top5_prob = r.top5_class.iter().map(|&c| 1.0 / (c + 2) as f32).collect();
                r.fwd_abs_diff = i as f64 / 3.0;
                r.shard_id = 9_000_000_000 + i as i64;
                if i % 4 == 3 {
                    r.layers =
                        Some(vec![LayerError { node: "conv".into(), op: "Conv".into(), factor: 2, blurred: i % 8 == 3, error: Some(i as f64) }]);
                }
                r
            })
            .collect()
    }

    #[test]
    fn parts_of_any_size_and_shape_read_back_as_written() {
        for n in [0, 1, 2, 17, 1024, 1500] {
            let rows = varied(n);
            let bytes = Bytes::from(encode(&rows).unwrap());
            assert_eq!(decode(bytes.clone()).unwrap(), rows, "{n} rows");
            assert_eq!(decode_summary(bytes).unwrap().is_reference.len(), n as usize, "{n} rows");
        }
    }

    #[test]
    fn parts_written_with_integer_offsets_still_read() {
        // Parts from before sub-pixel grids stored dx and dy as int32 (and had no
        // `layers` column).
        let rows: Vec<ResultRow> = (0..4).map(|i| ResultRow { dx: -i as f32, ..row(i, None) }).collect();
        let batch = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(encode(&rows).unwrap())).unwrap().build().unwrap().next().unwrap().unwrap();
        let fields: Vec<Field> = schema()
            .fields()
            .iter()
            .filter(|f| f.name() != "layers")
            .map(|f| if matches!(f.name().as_str(), "dx" | "dy") { Field::new(f.name(), DataType::Int32, false) } else { f.as_ref().clone() })
            .collect();
        let cols: Vec<ArrayRef> = schema()
            .fields()
            .iter()
            .filter(|f| f.name() != "layers")
            .map(|f| {
                let c = batch.column_by_name(f.name()).unwrap();
                match f.name().as_str() {
                    "dx" | "dy" => {
                        let v = c.as_any().downcast_ref::<Float32Array>().unwrap();
                        Arc::new(Int32Array::from_iter_values(v.values().iter().map(|&x| x as i32))) as ArrayRef
                    }
                    _ => c.clone(),
                }
            })
            .collect();
        let old_schema = Arc::new(Schema::new(fields));
        let old = RecordBatch::try_new(old_schema.clone(), cols).unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, old_schema, None).unwrap();
        w.write(&old).unwrap();
        w.close().unwrap();
        assert_eq!(decode(Bytes::from(buf)).unwrap(), rows);
    }

    #[test]
    fn garbage_parts_are_refused() {
        assert!(decode(Bytes::from_static(b"not parquet")).is_err());
    }

    #[test]
    fn local_folders_are_told_from_buckets_and_written_outside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let local = open_store(dir.path().to_str().unwrap()).unwrap();
        assert!(is_local(local.as_ref()));
        let vars = [("AWS_ACCESS_KEY_ID".to_string(), "k".to_string()), ("AWS_SECRET_ACCESS_KEY".to_string(), "s".to_string())];
        assert!(!is_local(open_store_with("s3://bucket/prefix", &vars).unwrap().as_ref()));
        // No runtime on this thread: the folder's calls run on it, a part past
        // the multipart size included.
        let big = Bytes::from(vec![7u8; MULTIPART_BYTES + 3]);
        futures::executor::block_on(put(local.as_ref(), "sweeps/1/parts/x.parquet", big.clone())).unwrap();
        assert_eq!(futures::executor::block_on(get(local.as_ref(), "sweeps/1/parts/x.parquet")).unwrap(), big);
    }

    #[test]
    fn parts_go_straight_into_a_local_folder_and_read_back_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path().to_str().unwrap()).unwrap();
        let folder = local_folder(store.as_ref()).unwrap();
        assert_eq!(folder.canonicalize().unwrap(), dir.path().canonicalize().unwrap());
        let vars = [("AWS_ACCESS_KEY_ID".to_string(), "k".to_string()), ("AWS_SECRET_ACCESS_KEY".to_string(), "s".to_string())];
        assert_eq!(local_folder(open_store_with("s3://bucket/prefix", &vars).unwrap().as_ref()), None);
        let key = part_key(3, 4, 1, 2);
        put_local(&folder, &key, b"first").unwrap();
        // Written again (a retry): the later bytes stand, in the one file.
        put_local(&folder, &key, b"second").unwrap();
        assert_eq!(futures::executor::block_on(get(store.as_ref(), &key)).unwrap(), Bytes::from_static(b"second"));
        assert_eq!(std::fs::read_dir(folder.join("sweeps/3/parts")).unwrap().count(), 1);
        for bad in ["../x", "sweeps//x", "/abs", "sweeps/./x"] {
            assert!(put_local(&folder, bad, b"x").is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_attempt_specific() {
        assert_ne!(part_key(1, 2, 1, 1), part_key(1, 2, 2, 2));
        assert_eq!(part_key(1, 2, 3, 4), "sweeps/1/parts/shard-0000000002-attempt-3-epoch-4.parquet");
    }
}
