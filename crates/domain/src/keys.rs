//! Object-store keys that more than one component must agree on.

/// Key of one shard attempt's result part. Attempt- and epoch-specific, so a late
/// or zombie writer never overwrites the committed file; the coordinator accepts a
/// commit only for exactly this key, so no worker can point a sweep at an object
/// outside its own shard's prefix.
pub fn part_key(sweep: i64, shard: i64, attempt: i32, epoch: i64) -> String {
    format!("sweeps/{sweep}/parts/shard-{shard:010}/attempt-{attempt}-epoch-{epoch}.parquet")
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_keys_are_per_attempt_and_epoch() {
        assert_eq!(super::part_key(3, 42, 2, 7), "sweeps/3/parts/shard-0000000042/attempt-2-epoch-7.parquet");
        assert_ne!(super::part_key(3, 42, 2, 7), super::part_key(3, 42, 2, 8));
    }
}
