-- What computed a sweep's committed parts: per model, each execution provider,
-- precision and runtime version, with how many shards each computed.
select s.model_idx, o.provider, coalesce(o.precision, '') as precision, coalesce(o.runtime, '') as runtime, count(*) as shards
from outputs o
join shards s on s.id = o.shard_id
where o.sweep_id = $1 and s.state = 'done'
group by s.model_idx, o.provider, o.precision, o.runtime
order by s.model_idx, o.provider, o.precision, o.runtime
