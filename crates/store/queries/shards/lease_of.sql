-- A shard's current lease, to tell a stale commit from a wrong part key.
select sweep_id, attempt, lease_epoch, state from shards where id = $1
