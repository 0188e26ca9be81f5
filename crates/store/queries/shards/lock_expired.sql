-- Lock leased shards whose deadline passed before $1.
select id, sweep_id, model_idx, attempt, lease_epoch, max_attempts, inferences, worker_id, failures, lost, lost_by,
       busy_seconds, leased_at
from shards
where state = 'leased' and leased_until < $1
order by leased_until
limit $2
for update skip locked
