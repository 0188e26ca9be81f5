-- Extend the leases that worker $1 still holds, given as (id, epoch) pairs.
with held as (
    select * from unnest($2::bigint[], $3::bigint[]) as h (id, epoch)
)
update shards s
set leased_until = $4
from held
where s.id = held.id and s.lease_epoch = held.epoch and s.state = 'leased' and s.worker_id = $1
returning s.id
