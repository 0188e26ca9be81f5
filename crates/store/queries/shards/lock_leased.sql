-- Lock one leased shard under its epoch, for a fenced failure report.
select id, sweep_id, attempt, max_attempts, inferences
from shards
where id = $1 and lease_epoch = $2 and state = 'leased'
for update
