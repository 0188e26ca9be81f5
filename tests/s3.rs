//! The S3 object store against a real S3 server (SeaweedFS on loopback).

use jagged_testkit::S3Server;
use object_store::ObjectStoreExt;

#[test]
fn s3_store_round_trips_small_and_multipart_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = jagged_artifacts::open_store_with("s3://jagged/roundtrip", &s3.env()).unwrap();
        // Content-addressed blobs: stored once, the same key twice.
        let small = bytes::Bytes::from_static(b"a small blob");
        let k1 = jagged_artifacts::put_blob(store.as_ref(), small.clone()).await.unwrap();
        let k2 = jagged_artifacts::put_blob(store.as_ref(), small.clone()).await.unwrap();
        assert_eq!(k1, k2);
        assert_eq!(jagged_artifacts::get(store.as_ref(), &k1).await.unwrap(), small);
        // A part larger than the multipart threshold goes up in pieces and comes back whole.
        let big: Vec<u8> = (0..(jagged_artifacts::MULTIPART_BYTES * 2 + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        jagged_artifacts::put(store.as_ref(), "sweeps/1/parts/big.parquet", big.clone().into()).await.unwrap();
        let back = jagged_artifacts::get(store.as_ref(), "sweeps/1/parts/big.parquet").await.unwrap();
        assert!(back.as_ref() == big.as_slice(), "multipart object differs");
        let head = store.head(&object_store::path::Path::from("sweeps/1/parts/big.parquet")).await.unwrap();
        assert_eq!(head.size as usize, big.len());
        // The prefix keeps keys inside it: another prefix does not see them.
        let other = jagged_artifacts::open_store_with("s3://jagged/elsewhere", &s3.env()).unwrap();
        assert!(jagged_artifacts::get(other.as_ref(), &k1).await.is_err());
        // Wrong credentials are refused.
        let mut bad = s3.env();
        bad.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
        bad.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
        let denied = jagged_artifacts::open_store_with("s3://jagged/roundtrip", &bad).unwrap();
        assert!(jagged_artifacts::get(denied.as_ref(), &k1).await.is_err(), "a wrong secret must be refused");
    });
}
