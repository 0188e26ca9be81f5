-- Failed items of a sweep's committed shards, by model, family and image (not
-- by shard id: shards adopted from another sweep have ids out of that order).
select f.shard_id, f.image_idx, f.image_name, f.reason, s.model_idx, s.family_idx
from failed_items f
join shards s on s.id = f.shard_id
where f.sweep_id = $1 and s.state = 'done'
order by s.model_idx, s.family_idx, f.image_idx, f.shard_id
