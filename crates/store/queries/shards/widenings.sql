-- Sweep $1's widened pairs.
select model_idx, family_idx, from_sweep, from_key, from_family
from widenings
where sweep_id = $1
order by model_idx, family_idx
