//! Parts written and read back: every shape of row, the writer's files, and
//! parts of earlier layouts.

use super::*;
use arrow_array::{ArrayRef, Float32Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

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
                r.layers = Some(vec![LayerError { node: "conv".into(), op: "Conv".into(), factor: 2, blurred: i % 8 == 3, error: Some(i as f64) }]);
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
