select id, model_idx, family_idx, image_lo, image_hi, coalesce(last_error, '') as last_error
from shards
where sweep_id = $1 and state = 'failed'
order by id
limit $2
