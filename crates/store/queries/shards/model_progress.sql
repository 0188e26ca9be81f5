-- A sweep's shards and inferences by model and state.
select model_idx, state, count(*) as shards, sum(inferences)::bigint as inferences
from shards
where sweep_id = $1
group by model_idx, state
order by model_idx, state
