select count(*) from shards where sweep_id = $1 and state = 'leased'
