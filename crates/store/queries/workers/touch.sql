update workers set last_seen = $2 where id = $1
