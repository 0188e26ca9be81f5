select f.shard_id, f.image_idx, f.image_name, f.reason, s.model_idx, s.family_idx
from failed_items f
join shards s on s.id = f.shard_id
where f.sweep_id = $1 and s.state = 'done'
order by f.shard_id, f.image_idx
