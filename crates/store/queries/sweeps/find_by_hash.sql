-- The oldest sweep, not cancelled, with this content hash.
select id from sweeps where content_hash = $1 and state <> 'cancelled' order by id limit 1
