-- Requeue or fail one shard ($1) that ended without a commit: its state, when
-- it may run again, its last error, and its retry counters.
update shards
set state        = $2,
    run_after    = $3,
    last_error   = $4,
    worker_id    = null,
    leased_until = null,
    finished_at  = case when $2 = 'failed' then $5 else null end,
    failures     = $6,
    lost         = $7,
    lost_by      = $8
where id = $1
