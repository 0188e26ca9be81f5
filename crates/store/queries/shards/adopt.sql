-- Sweep $1 adopts, as its model $4 x family $5, the done shards of content key
-- $3 in sweep $2: copies of the shards (done at $6), their outputs (the same
-- parts, checksums and provenance, naming the shard that computed each, with
-- no time or model key of their own, so throughput and cost count them once)
-- and their failed items, in the order the source made them (the report folds
-- parts in shard order). Returns what was adopted, for the sweep's counters.
-- A source that holds the pair twice (a family listed twice, as sweeps once
-- could) gives one copy: the first family's.
with src as (
    select distinct on (s.image_lo, s.ring) s.id, s.image_lo, s.image_hi, s.inferences, s.max_attempts, s.ring, s.items, s.refs, s.attempt, s.wide_key,
           o.object_key, o.rows, o.sha256, o.lease_epoch, o.worker_id, o.provider, o.precision, o.runtime,
           coalesce(o.reused_from, o.shard_id) as origin
    from shards s
    join outputs o on o.shard_id = s.id
    where s.sweep_id = $2 and s.content_key = $3 and s.state = 'done'
    order by s.image_lo, s.ring, s.family_idx, s.model_idx
), ins as (
    insert into shards (sweep_id, model_idx, family_idx, image_lo, image_hi, inferences, priority, max_attempts, ring, items, refs,
                        state, attempt, content_key, wide_key, finished_at)
    select $1, $4, $5, image_lo, image_hi, inferences, $7, max_attempts, ring, items, refs, 'done', attempt, $3, wide_key, $6
    from src
    order by id
    returning id, image_lo, ring
), outs as (
    insert into outputs (shard_id, sweep_id, object_key, rows, sha256, attempt, lease_epoch, worker_id, provider, seconds, committed_at,
                         model_key, busy_seconds, precision, runtime, reused_from)
    select i.id, $1, s.object_key, s.rows, s.sha256, s.attempt, s.lease_epoch, s.worker_id, s.provider, 0, $6, null, 0, s.precision,
           s.runtime, s.origin
    from ins i join src s on s.image_lo = i.image_lo and s.ring = i.ring
), fails as (
    insert into failed_items (shard_id, sweep_id, image_idx, image_name, reason)
    select i.id, $1, f.image_idx, f.image_name, f.reason
    from ins i join src s on s.image_lo = i.image_lo and s.ring = i.ring
    join failed_items f on f.shard_id = s.id
)
select count(*)::int as shards,
       coalesce(sum(inferences), 0)::bigint as inferences,
       coalesce(sum(least(rows, inferences)), 0)::bigint as done,
       coalesce(sum(greatest(inferences - rows, 0)), 0)::bigint as skipped,
       coalesce((select count(*) from failed_items f where f.shard_id in (select id from src)), 0)::bigint as failed
from src
