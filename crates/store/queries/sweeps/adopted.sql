-- Sweep $1's counters after adopting $2 done shards of $3 inferences ($4 run,
-- $5 that could not run, $6 failed items); a sweep adopting every shard ends
-- `done` at $7.
update sweeps
set total_shards      = total_shards + $2,
    inferences_total  = inferences_total + $3,
    shards_done       = shards_done + $2,
    inferences_done   = inferences_done + $4,
    inferences_failed = inferences_failed + $5,
    failed_items      = failed_items + $6,
    state             = case when state = 'running' and shards_done + $2 >= total_shards + $2 then 'done' else state end,
    finished_at       = case when state = 'running' and shards_done + $2 >= total_shards + $2 then $7 else finished_at end
where id = $1
