//! The object store: opened from a URL, whole objects read and written, and
//! models and images kept under their content's SHA-256.

use crate::{ArtifactError, Result};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
