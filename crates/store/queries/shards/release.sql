-- Requeue or fail shards (ids $1) with per-shard states, run_after and errors.
update shards s
set state        = u.state,
    run_after    = u.run_after,
    last_error   = u.error,
    worker_id    = null,
    leased_until = null,
    finished_at  = case when u.state = 'failed' then $5 else null end
from unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) as u (id, state, run_after, error)
where s.id = u.id
