insert into outputs (shard_id, sweep_id, object_key, rows, sha256, attempt, lease_epoch, worker_id, provider, seconds, committed_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
