-- Requeue a sweep's failed shards (all, or the one named by $2) with fresh
-- attempts and retry budgets; their lease epochs keep counting up, so every
-- new part key is new.
update shards
set state = 'queued', attempt = 0, failures = 0, lost = 0, lost_by = '{}', run_after = $3,
    worker_id = null, leased_until = null, finished_at = null
where sweep_id = $1 and state = 'failed' and ($2::bigint is null or id = $2)
returning id, inferences
