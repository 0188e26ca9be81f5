-- Lock one leased shard under its epoch, for a fenced failure report or hand-back.
select id, sweep_id, model_idx, attempt, lease_epoch, max_attempts, inferences, worker_id, failures, lost, lost_by,
       busy_seconds, leased_at
from shards
where id = $1 and lease_epoch = $2 and state = 'leased'
for update
