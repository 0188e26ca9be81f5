-- Claim up to $3 ready shards of sweep $5 for worker $2 at time $1, lease until
-- $4; lowest model, then lowest id, first, after the point ($6, $7) in that
-- order (where the caller's last claim ended). claim_model.sql for one model.
with next as (
    select id
    from shards
    where sweep_id = $5 and state = 'queued' and run_after <= $1 and (model_idx, id) > ($6::integer, $7::bigint)
    order by model_idx, id
    limit $3
    for update skip locked
)
update shards s
set state        = 'leased',
    attempt      = s.attempt + 1,
    lease_epoch  = s.lease_epoch + 1,
    worker_id    = $2,
    leased_until = $4,
    started_at   = coalesce(s.started_at, $1),
    leased_at    = $1,
    busy_seconds = 0
from next
where s.id = next.id
returning s.id, s.sweep_id, s.model_idx, s.family_idx, s.image_lo, s.image_hi, s.attempt, s.lease_epoch, s.leased_until, s.inferences, s.run_after, s.ring, s.items, s.refs
