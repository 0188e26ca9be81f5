-- The update every claim ends with (after claim_model.sql's or
-- claim_from.sql's `next`), for the claims of one (sweep, model) that arrived
-- together: request k (from 1) of worker $2[k] wants $8[k] shards; the shards
-- found go to the requests in order, each leased at time $1 until $4. Returns
-- each leased shard with the request (`request`) it went to.
, slots as (
    select r.worker, r.request, row_number() over (order by r.request, g.k) as n
    from unnest($2::bigint[], $8::bigint[]) with ordinality as r (worker, wanted, request)
    cross join lateral generate_series(1, r.wanted) as g (k)
)
update shards s
set state        = 'leased',
    attempt      = s.attempt + 1,
    lease_epoch  = s.lease_epoch + 1,
    worker_id    = slots.worker,
    leased_until = $4,
    started_at   = coalesce(s.started_at, $1),
    leased_at    = $1,
    busy_seconds = 0
from next
join slots on slots.n = next.n
where s.id = next.id
returning s.id, s.sweep_id, s.model_idx, s.family_idx, s.image_lo, s.image_hi, s.attempt, s.lease_epoch, s.leased_until, s.inferences, s.run_after, s.ring,
          s.items, s.refs, slots.request
