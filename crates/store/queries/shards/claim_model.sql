-- The shards claim_update.sql leases: up to $3 ready shards of sweep $5 and
-- model $6 at time $1, numbered from 1 (`n`); lowest id first, after id $7
-- (where the caller's last claim of this model ended). claim_from.sql for any
-- model: with the model fixed, the index scan starts at ($5, $6, $7) instead
-- of walking the model's earlier entries, which a held snapshot keeps even
-- once claimed.
with next as (
    select q.id, row_number() over (order by q.id) as n
    from (
        select id
        from shards
        where sweep_id = $5 and model_idx = $6 and state = 'queued' and run_after <= $1 and id > $7
        order by id
        limit $3
        for update skip locked
    ) q
)
