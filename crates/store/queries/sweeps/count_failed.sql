-- Count a shard failed for good into its sweep ($2: its planned inferences); the
-- sweep ends `failed` when it was the last one out.
update sweeps
set shards_failed     = shards_failed + 1,
    inferences_failed = inferences_failed + $2,
    state             = case when state = 'running' and shards_done + shards_failed + 1 + shards_cancelled >= total_shards
                             then 'failed' else state end,
    finished_at       = case when state = 'running' and shards_done + shards_failed + 1 + shards_cancelled >= total_shards
                             then $3 else finished_at end
where id = $1
