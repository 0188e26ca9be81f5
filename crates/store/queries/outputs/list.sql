-- Committed outputs of a sweep with their shard's coordinates, in shard order.
select o.shard_id, o.object_key, o.rows, o.sha256, s.model_idx, s.family_idx
from outputs o
join shards s on s.id = o.shard_id
where o.sweep_id = $1 and s.state = 'done'
order by o.shard_id
