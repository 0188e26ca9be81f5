-- Fenced commits, many in one statement (the coordinator groups concurrent
-- ones): only the current lease holder's epoch, for the attempt its part key
-- names, may complete a shard; each output and its failed items are written
-- with it, or nothing is. Returns the shards done (`shard` rows) and, per
-- sweep, what to add to its tally (`sweep` rows; tally.sql, in the same
-- transaction): inferences done are the rows written; the rest of the shard's
-- planned inferences (those of its failed items) count as failed. An adaptive
-- shard that names images for its next ring ($21..$23: shard, image, reference
-- class) gets that ring's shard inserted with them, added to the sweep's
-- totals in the same tally, so the sweep cannot end before it.
--
-- Shards are found by primary key only: the state they must be in comes from
-- the input (`held`), not a constant, so the planner cannot pick an index of
-- leased shards, whose entries for every shard leased since the oldest open
-- snapshot it would walk (docs/scaling.md).
with input as materialized (
    select t.*, 'leased'::text as held
    from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::bigint[], $7::text[],
                $8::bigint[], $9::text[], $10::float8[], $11::text[], $12::bigint[], $18::float8[], $19::text[], $20::text[])
         as t (shard, epoch, sweep, attempt, object_key, rows, sha256, worker, provider, seconds, model_key, failed, busy, precision, runtime)
), done as (
    update shards s
    set state = 'done', finished_at = $13, leased_until = null, last_error = null
    from input i
    where s.id = i.shard and s.lease_epoch = i.epoch and s.state = i.held and s.sweep_id = i.sweep and s.attempt = i.attempt
    returning s.id, s.sweep_id, s.inferences, s.attempt, s.model_idx, s.family_idx, s.image_lo, s.image_hi, s.ring, s.priority, s.max_attempts, s.content_key
), follow as (
    insert into shards (sweep_id, model_idx, family_idx, image_lo, image_hi, inferences, priority, max_attempts, ring, items, refs, run_after,
                        content_key)
    select d.sweep_id, d.model_idx, d.family_idx, d.image_lo, d.image_hi, count(*) * 8 * (d.ring + 1), d.priority, d.max_attempts,
           d.ring + 1, array_agg(n.image order by n.image), array_agg(n.ref order by n.image), $13, d.content_key
    from done d join unnest($21::bigint[], $22::int[], $23::int[]) as n (shard, image, ref) on n.shard = d.id
    group by d.id, d.sweep_id, d.model_idx, d.family_idx, d.image_lo, d.image_hi, d.ring, d.priority, d.max_attempts, d.content_key
    returning sweep_id, inferences
), added as (
    select sweep_id, count(*)::int as shards, sum(inferences)::bigint as inferences from follow group by sweep_id
), output as (
    insert into outputs (shard_id, sweep_id, object_key, rows, sha256, attempt, lease_epoch, worker_id, provider, seconds, committed_at, model_key, busy_seconds, precision, runtime)
    select d.id, d.sweep_id, i.object_key, i.rows, i.sha256, d.attempt, i.epoch, i.worker, i.provider, i.seconds, $13, i.model_key, i.busy,
           nullif(i.precision, ''), nullif(i.runtime, '')
    from done d join input i on i.shard = d.id
), failed as (
    insert into failed_items (shard_id, sweep_id, image_idx, image_name, reason)
    select d.id, d.sweep_id, f.i, f.n, f.r
    from done d join unnest($14::bigint[], $15::int[], $16::text[], $17::text[]) as f (shard, i, n, r) on f.shard = d.id
), per_sweep as (
    select d.sweep_id, count(*)::int as shards, sum(least(i.rows, d.inferences))::bigint as inferences,
           sum(greatest(d.inferences - i.rows, 0))::bigint as skipped, sum(i.failed)::bigint as failed
    from done d join input i on i.shard = d.id
    group by d.sweep_id
)
select 'shard' as kind, id, 0 as shards, 0::bigint as inferences, 0::bigint as skipped, 0::bigint as failed,
       0 as added_shards, 0::bigint as added_inferences
from done
union all
select 'sweep', p.sweep_id, p.shards, p.inferences, p.skipped, p.failed, coalesce(a.shards, 0), coalesce(a.inferences, 0)
from per_sweep p left join added a on a.sweep_id = p.sweep_id
