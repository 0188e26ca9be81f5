update shards
set state = 'cancelled', finished_at = $2, leased_until = null
where sweep_id = $1 and state in ('queued', 'leased')
