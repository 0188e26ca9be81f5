-- Workers seen since $1 that have not left, each with the shards it holds.
select w.id, w.name, w.host, w.device, w.last_seen, s.id as shard_id, s.sweep_id, s.model_idx, s.family_idx,
       s.image_lo, s.image_hi, s.attempt, s.busy_seconds, s.leased_at
from workers w
left join shards s on s.worker_id = w.id and s.state = 'leased'
where w.last_seen > $1 and w.left_at is null
order by w.id, s.id
