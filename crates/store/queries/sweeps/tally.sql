-- Add to the counters of sweeps $1 (one change per sweep: shards and
-- inferences planned, shards done, failed and cancelled, inferences done and
-- failed, failed items): each sweep's latest tally plus its change becomes its
-- next tally and the one before is deleted. A running sweep with no shard left
-- to run ends `done` at $10, or `failed` when any of its shards failed or none
-- of its inferences could run (every item failed: no result at all). The
-- caller holds each sweep's tally lock (tally_lock.sql), taken in a statement
-- of its own so this one's snapshot sees the latest tally; should two writers
-- still meet, the second's insert fails on the primary key rather than
-- counting anything twice. The latest tally comes from latest_tally() and
-- goes by its row's address (both planned to stay off the dead tallies a
-- long transaction elsewhere keeps). Returns the sweeps that ended.
with change as (
    select *
    from unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], $5::int[], $6::int[], $7::bigint[], $8::bigint[], $9::bigint[])
         as c (sweep, total_shards, inferences_total, shards_done, shards_failed, shards_cancelled, inferences_done, inferences_failed, failed_items)
), latest as (
    select t.*
    from change c
    cross join lateral latest_tally(c.sweep) t
), next as (
    insert into sweep_tallies (sweep_id, seq, total_shards, shards_done, shards_failed, shards_cancelled, inferences_total, inferences_done,
                               inferences_failed, failed_items)
    select l.sweep_id, l.seq + 1, l.total_shards + c.total_shards, l.shards_done + c.shards_done, l.shards_failed + c.shards_failed,
           l.shards_cancelled + c.shards_cancelled, l.inferences_total + c.inferences_total, l.inferences_done + c.inferences_done,
           l.inferences_failed + c.inferences_failed, l.failed_items + c.failed_items
    from latest l join change c on c.sweep = l.sweep_id
    returning *
), gone as (
    delete from sweep_tallies t using latest l where t.ctid = l.at
)
update sweeps w
set state = case when n.shards_failed > 0 or (n.inferences_done = 0 and n.inferences_total > 0) then 'failed' else 'done' end, finished_at = $10
from next n
where w.id = n.sweep_id and w.state = 'running' and n.shards_done + n.shards_failed + n.shards_cancelled >= n.total_shards
returning w.id
