-- Lock one leased shard under its epoch, for a fenced failure report or hand-back.
select id, sweep_id, attempt, max_attempts, inferences, worker_id, failures, lost, lost_by
from shards
where id = $1 and lease_epoch = $2 and state = 'leased'
for update
