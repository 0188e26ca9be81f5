-- Fenced commit: only the current lease holder's epoch may complete the shard.
update shards
set state = 'done', finished_at = $3, leased_until = null, last_error = null
where id = $1 and lease_epoch = $2 and state = 'leased'
returning sweep_id, inferences, attempt, model_idx, family_idx
