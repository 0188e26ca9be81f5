-- Claim up to $3 ready shards of sweep $5 and model $6 for worker $2 at time
-- $1, lease until $4; lowest id first, after id $7 (where the caller's last
-- claim of this model ended). claim_from.sql for any model: with the model
-- fixed, the index scan starts at ($5, $6, $7) instead of walking the model's
-- earlier entries, which a held snapshot keeps even once claimed.
with next as (
    select id
    from shards
    where sweep_id = $5 and model_idx = $6 and state = 'queued' and run_after <= $1 and id > $7
    order by id
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
