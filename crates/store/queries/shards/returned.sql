-- Workers of a shard's run of lost leases ($2) seen again after they lost it:
-- frozen or cut off for a while, not dead.
select distinct a.worker_id
from attempts a
join workers w on w.id = a.worker_id
where a.shard_id = $1 and a.outcome = 'abandoned' and a.worker_id = any($2) and w.last_seen > a.ended_at
