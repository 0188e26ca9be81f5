-- A sweep's latest tally (with where it lies, for deleting it), always found
-- by a backward scan of the primary key. While a long transaction elsewhere
-- holds back the xmin horizon, the table keeps every tally appended since
-- (none can be removed) while its statistics count only the few live ones,
-- and the planner then prefers reading the whole table, which grows with that
-- transaction's age. Sequential and bitmap scans are off inside this function
-- only (PL/pgSQL, so that a session plans its query once). Its columns are
-- sweep_tallies' (a migration that changes the table changes them too).
create function latest_tally(sweep bigint)
returns table (sweep_id bigint, seq bigint, total_shards integer, shards_done integer, shards_failed integer, shards_cancelled integer,
               inferences_total bigint, inferences_done bigint, inferences_failed bigint, failed_items bigint, at tid)
language plpgsql stable rows 1
set enable_seqscan = off
set enable_bitmapscan = off
as $$
begin
    return query
    select t.sweep_id, t.seq, t.total_shards, t.shards_done, t.shards_failed, t.shards_cancelled, t.inferences_total, t.inferences_done,
           t.inferences_failed, t.failed_items, t.ctid
    from sweep_tallies t
    where t.sweep_id = sweep
    order by t.seq desc
    limit 1;
end
$$;
