//! Decoding each item once and preparing it for its family, in parallel.

use jagged_domain::task::{FailedItem, ShardTask, TaskItem};
use jagged_domain::transform::Prepared;

/// Runs `f` on each element of `items` on up to `threads` scoped threads
/// (contiguous slices, in order), returning the results in order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("host thread panicked")).collect()
    })
}

/// Each item decoded (a sequence: each frame) and prepared for the shard's
/// family at model input `side`, on up to `threads` threads; the items that
/// could not be, with why.
pub(crate) fn items(task: &ShardTask, images: &super::Fetched, threads: usize, side: u32) -> (Vec<(TaskItem, Prepared)>, Vec<FailedItem>) {
    let all = par_map(images, threads, |(item, bytes)| {
        let res = bytes
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|files| {
                let many = files.len() > 1;
                files
                    .iter()
                    .enumerate()
                    .map(|(k, b)| {
                        jagged_infer::decode_image_with(b, task.jpeg_decoder)
                            .map_err(|e| if many { format!("frame {k}: {e}") } else { e.to_string() })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(|imgs| task.family.prepare_item(&imgs, side));
        (item.clone(), res)
    });
    let (mut prepared, mut failed) = (Vec::new(), Vec::new());
    for (item, res) in all {
        match res {
            Ok(p) => prepared.push((item, p)),
            Err(reason) => failed.push(FailedItem { index: item.index, name: item.image.name.clone(), reason }),
        }
    }
    (prepared, failed)
}
