-- The record of an attempt that ended without a commit ($6: failed, handed_back
-- or abandoned), with the busy seconds it spent; once per lease epoch.
insert into attempts (shard_id, lease_epoch, sweep_id, model_idx, worker_id, outcome, busy_seconds, wall_seconds, ended_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (shard_id, lease_epoch) do nothing
