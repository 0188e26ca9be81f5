-- Lock leased shards whose deadline passed before $1 and not before $3 (where
-- the reaper's last pass reached, so that it does not walk the index entries
-- of every lease ended since a long transaction elsewhere began; the epoch for
-- all).
select id, sweep_id, model_idx, attempt, lease_epoch, max_attempts, inferences, worker_id, failures, lost, lost_by,
       busy_seconds, leased_at
from shards
where state = 'leased' and leased_until < $1 and leased_until >= $3
order by leased_until
limit $2
for update skip locked
