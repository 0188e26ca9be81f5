-- The shards claim_update.sql leases: up to $3 ready shards of sweep $5 at time
-- $1, numbered from 1 (`n`); lowest model, then lowest id, first, after the
-- point ($6, $7) in that order (where the caller's last claim ended).
-- claim_model.sql for one model.
with next as (
    select q.id, row_number() over (order by q.model_idx, q.id) as n
    from (
        select id, model_idx
        from shards
        where sweep_id = $5 and state = 'queued' and run_after <= $1 and (model_idx, id) > ($6::integer, $7::bigint)
        order by model_idx, id
        limit $3
        for update skip locked
    ) q
)
