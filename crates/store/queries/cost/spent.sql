-- What a sweep's attempts spent, by model, worker and outcome: committed ones
-- from `outputs`, the rest from `attempts`; with the worker's name and device.
with spent as (
    select s.model_idx, o.worker_id, 'done' as outcome, o.busy_seconds, o.seconds as wall_seconds, o.rows as inferences
    from outputs o
    join shards s on s.id = o.shard_id
    where o.sweep_id = $1
    union all
    select a.model_idx, a.worker_id, a.outcome, a.busy_seconds, a.wall_seconds, 0
    from attempts a
    where a.sweep_id = $1
)
select sp.model_idx, coalesce(sp.worker_id, 0) as worker_id, coalesce(w.name, '') as worker, coalesce(w.device, '') as device,
       sp.outcome, count(*) as attempts, sum(sp.busy_seconds) as busy_seconds, sum(sp.wall_seconds) as wall_seconds,
       sum(sp.inferences)::bigint as inferences
from spent sp
left join workers w on w.id = sp.worker_id
group by sp.model_idx, sp.worker_id, w.name, w.device, sp.outcome
order by sp.model_idx, sp.worker_id, sp.outcome
