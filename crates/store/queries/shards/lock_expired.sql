-- Lock leased shards whose deadline passed before $1.
select id, sweep_id, attempt, max_attempts, inferences, worker_id, failures, lost, lost_by
from shards
where state = 'leased' and leased_until < $1
order by leased_until
limit $2
for update skip locked
