//! Fetching a shard's inputs from the object store: its items' files, and a
//! widened grid's earlier rows.

use crate::compute::{Fetched, Taken};
use crate::failure::Failure;
use jagged_domain::task::ShardTask;
use object_store::ObjectStore;
use std::collections::{HashMap, HashSet};

/// Each item with its file's bytes (a sequence: each frame's), or why it is
/// missing (a failed item); any other store error fails the attempt.
pub(crate) async fn images(store: &dyn ObjectStore, task: &ShardTask) -> Result<Fetched, Failure> {
    // Fetched concurrently (a remote store).
    let fetches = task.items.iter().map(|item| {
        let img = &item.image;
        let keys = if img.frames.is_empty() { vec![img.key.clone()] } else { img.frames.clone() };
        async move {
            let gets = keys.iter().map(|k| jagged_artifacts::get(store, k));
            futures::future::join_all(gets).await.into_iter().collect::<Result<Vec<_>, _>>()
        }
    });
    let fetched = futures::future::join_all(fetches).await;
    let mut images = Vec::with_capacity(task.items.len());
    for (item, bytes) in task.items.iter().zip(fetched) {
        let bytes = match bytes {
            Ok(b) => Ok(b),
            Err(jagged_artifacts::ArtifactError::Store(object_store::Error::NotFound { .. })) => {
                Err(if item.image.frames.is_empty() { "image missing from the store" } else { "a frame is missing from the store" }.to_string())
            }
            Err(e) => return Err(Failure { message: format!("image `{}`: {e}", item.image.name), retryable: true }),
        };
        images.push((item.clone(), bytes));
    }
    Ok(images)
}

/// The rows a widened shard takes from its earlier grid's committed parts,
/// each checked against its checksum; `None` (with a warning: the whole grid
/// then runs, as for a shard that was never widened) when a part is missing,
/// altered or unreadable, or the two grids no longer match.
pub(crate) async fn taken(store: &dyn ObjectStore, task: &ShardTask) -> Option<Taken> {
    let widen = task.widen.as_ref()?;
    let warn = |why: String| tracing::warn!(shard = task.shard_id, "running the whole grid: {why}");
    let Some(widening) = task.family.widening_of(&widen.family) else {
        warn("the earlier grid has no rows this one can take".into());
        return None;
    };
    let wanted: HashSet<u32> = task.items.iter().map(|i| i.index).collect();
    let mut rows: HashMap<u32, Vec<jagged_artifacts::ResultRow>> = Default::default();
    let gets = widen.parts.iter().map(|(key, _)| jagged_artifacts::get(store, key));
    for ((key, sha256), got) in widen.parts.iter().zip(futures::future::join_all(gets).await) {
        let bytes = match got {
            Ok(b) => b,
            Err(e) => {
                warn(format!("earlier part `{key}`: {e}"));
                return None;
            }
        };
        if jagged_artifacts::sha256_hex(&bytes) != *sha256 {
            warn(format!("earlier part `{key}` does not match its checksum"));
            return None;
        }
        match jagged_artifacts::decode(bytes) {
            Ok(decoded) => {
                for r in decoded.into_iter().filter(|r| wanted.contains(&(r.image_index as u32))) {
                    rows.entry(r.image_index as u32).or_default().push(r);
                }
            }
            Err(e) => {
                warn(format!("earlier part `{key}`: {e}"));
                return None;
            }
        }
    }
    Some(Taken { widening, old_points: widen.family.points(), rows })
}
