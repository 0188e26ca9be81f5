-- Count a finished shard into its sweep's counters and finish the sweep when all are.
update sweeps
set shards_done     = shards_done + $2,
    shards_failed   = shards_failed + $3,
    inferences_done = inferences_done + $4,
    failed_items    = failed_items + $5,
    state           = case when state = 'running' and shards_done + $2 + shards_failed + $3 + shards_cancelled >= total_shards
                           then 'done' else state end,
    finished_at     = case when state = 'running' and shards_done + $2 + shards_failed + $3 + shards_cancelled >= total_shards
                           then $6 else finished_at end
where id = $1
