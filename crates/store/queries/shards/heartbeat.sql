-- Extend the leases that worker $1 still holds, given as (id, epoch) pairs, with
-- each attempt's busy seconds so far. Shards are found by primary key only
-- (the state they must be in comes from `held`; see complete.sql).
with held as materialized (
    select h.*, 'leased'::text as state from unnest($2::bigint[], $3::bigint[], $5::float8[]) as h (id, epoch, busy)
)
update shards s
set leased_until = $4,
    busy_seconds = greatest(s.busy_seconds, held.busy)
from held
where s.id = held.id and s.lease_epoch = held.epoch and s.state = held.state and s.worker_id = $1
returning s.id
