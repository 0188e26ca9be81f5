-- Cancel a sweep (its tally counts the shards cancelled).
update sweeps
set state = case when state = 'running' then 'cancelled' else state end,
    finished_at = coalesce(finished_at, $2)
where id = $1
