//! One leased shard as a worker runs it, and what it reports back.

use crate::spec::{ImageRef, ResolvedModel};
use crate::transform::Family;

/// Everything a worker needs to run one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardTask {
    /// Shard id.
    pub shard_id: i64,
    /// Lease epoch to present when committing; a stale one is refused.
    pub lease_epoch: i64,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// The shard's sweep.
    pub sweep_id: i64,
    /// The model, with its card and structure.
    pub model: ResolvedModel,
    /// Position of the family in the spec.
    pub family_index: u32,
    /// The family with its grid.
    pub family: Family,
    /// The images (or sequences) of the shard, with their sweep indices.
    pub items: Vec<TaskItem>,
    /// Inputs per `session.run`.
    pub batch_size: u32,
    /// Also store each point's full probability vector.
    pub keep_probs: bool,
    /// How JPEG files are decoded.
    pub jpeg_decoder: crate::image::JpegDecoder,
    /// Lease deadline, ms since the Unix epoch.
    pub lease_deadline_ms: i64,
    /// The ring an adaptive (`radius`) shard searches; 0 for other families.
    pub ring: u32,
    /// Where a widened grid takes the rows it does not compute anew.
    pub widen: Option<WidenFrom>,
}

/// The earlier grid of the same family and model whose committed rows a
/// widened shard takes as they are ([`Family::widening_of`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WidenFrom {
    /// The earlier grid's family.
    pub family: Family,
    /// Its committed parts holding the shard's items: object key and SHA-256.
    pub parts: Vec<(String, String)>,
}

/// One item of a shard: an image (or a sequence) and its index in the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskItem {
    /// Index within the sweep's items (the family's own for sequences).
    pub index: u32,
    /// The image or sequence.
    pub image: ImageRef,
    /// After an adaptive family's first ring: the item's top-1 class at the
    /// reference point, as the first ring found it.
    pub reference: Option<u32>,
}

/// An item that could not be processed inside an otherwise completed shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedItem {
    /// Index within the sweep's items.
    pub index: u32,
    /// Name (path relative to the dataset root).
    pub name: String,
    /// Why it failed.
    pub reason: String,
}
