update sweeps
set shards_cancelled = shards_cancelled + $2,
    state = case when state = 'running' then 'cancelled' else state end,
    finished_at = coalesce(finished_at, $3)
where id = $1
