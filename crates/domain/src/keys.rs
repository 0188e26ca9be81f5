//! Object-store keys that more than one component must agree on.

/// Key of one shard attempt's result part. Attempt- and epoch-specific, so a late
/// or zombie writer never overwrites the committed file; the coordinator accepts a
/// commit only for exactly this key, so no worker can point a sweep at an object
/// outside its own shard's name.
///
/// Parts lie side by side in one folder per sweep: a folder per shard (as
/// `sweeps/<sweep>/parts/shard-<shard>/attempt-<a>-epoch-<e>.parquet`, the
/// layout of earlier versions, still read and accepted) cost a local store a
/// second file-system entry for every shard, a third of a worker's time on
/// one-image shards.
pub fn part_key(sweep: i64, shard: i64, attempt: i32, epoch: i64) -> String {
    format!("sweeps/{sweep}/parts/shard-{shard:010}-attempt-{attempt}-epoch-{epoch}.parquet")
}

/// The key earlier versions gave a part, one folder per shard.
fn nested_part_key(sweep: i64, shard: i64, attempt: i32, epoch: i64) -> String {
    format!("sweeps/{sweep}/parts/shard-{shard:010}/attempt-{attempt}-epoch-{epoch}.parquet")
}

/// What a part key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartKey {
    /// The sweep.
    pub sweep: i64,
    /// The shard.
    pub shard: i64,
    /// The attempt that wrote it.
    pub attempt: i32,
    /// The lease epoch it was written under.
    pub epoch: i64,
}

/// What a key written by [`part_key`] (or by earlier versions, a folder per
/// shard) names; `None` for any other key.
pub fn parse_part_key(key: &str) -> Option<PartKey> {
    let rest = key.strip_prefix("sweeps/")?;
    let (sweep, rest) = rest.split_once("/parts/shard-")?;
    let (shard, rest) = rest.split_once("-attempt-").or_else(|| rest.split_once("/attempt-"))?;
    let (attempt, rest) = rest.split_once("-epoch-")?;
    let epoch = rest.strip_suffix(".parquet")?;
    let k = PartKey { sweep: sweep.parse().ok()?, shard: shard.parse().ok()?, attempt: attempt.parse().ok()?, epoch: epoch.parse().ok()? };
    // Only the canonical spellings (no signs, padding as written) round-trip.
    (part_key(k.sweep, k.shard, k.attempt, k.epoch) == key || nested_part_key(k.sweep, k.shard, k.attempt, k.epoch) == key).then_some(k)
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_keys_parse_back_and_nothing_else_does() {
        let k = Some(super::PartKey { sweep: 3, shard: 42, attempt: 2, epoch: 7 });
        assert_eq!(super::parse_part_key(&super::part_key(3, 42, 2, 7)), k);
        // Parts of earlier versions, a folder per shard, are still theirs.
        assert_eq!(super::parse_part_key("sweeps/3/parts/shard-0000000042/attempt-2-epoch-7.parquet"), k);
        for bad in [
            "sweeps/3/parts/shard-42/attempt-2-epoch-7.parquet",
            "sweeps/3/parts/shard-42-attempt-2-epoch-7.parquet",
            "sweeps/3/parts/shard-0000000042-attempt-+2-epoch-7.parquet",
            "sweeps/3/parts/shard-0000000042/attempt-2-epoch-7.parquet/../x",
            "sweeps/3/parts/shard-0000000042-attempt-2-epoch-7.parquet/../x",
            "sweeps/3/parts/shard-0000000042/x-attempt-2-epoch-7.parquet",
            "sweeps/3/parts/shard-0000000042/attempt-+2-epoch-7.parquet",
            "sweeps/3/parts/shard-0000000042/attempt-2-epoch-7.parquet/../x",
            "../sweeps/3/parts/shard-0000000042/attempt-2-epoch-7.parquet",
            "sweeps/3/parts/shard-0000000042/attempt-2-epoch-7",
            "",
        ] {
            assert_eq!(super::parse_part_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn part_keys_are_per_attempt_and_epoch() {
        assert_eq!(super::part_key(3, 42, 2, 7), "sweeps/3/parts/shard-0000000042-attempt-2-epoch-7.parquet");
        assert_ne!(super::part_key(3, 42, 2, 7), super::part_key(3, 42, 2, 8));
    }
}
