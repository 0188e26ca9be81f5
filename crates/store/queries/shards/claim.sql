-- Claim up to $3 ready shards for worker $2 at time $1, lease until $4.
with next as (
    select id
    from shards
    where state = 'queued' and run_after <= $1
    order by priority desc, id
    limit $3
    for update skip locked
)
update shards s
set state        = 'leased',
    attempt      = s.attempt + 1,
    lease_epoch  = s.lease_epoch + 1,
    worker_id    = $2,
    leased_until = $4,
    started_at   = coalesce(s.started_at, $1)
from next
where s.id = next.id
returning s.id, s.sweep_id, s.model_idx, s.family_idx, s.image_lo, s.image_hi, s.attempt, s.lease_epoch, s.leased_until
