-- First lease and last finish of a sweep's shards, ms since the epoch.
select (extract(epoch from min(started_at)) * 1000)::bigint as first_start,
       (extract(epoch from max(finished_at)) * 1000)::bigint as last_finish
from shards
where sweep_id = $1
