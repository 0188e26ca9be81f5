-- The update every claim ends with (after claim_model.sql's or
-- claim_from.sql's `next`): lease the chosen shards to worker $2 at time $1
-- until $4.
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
