update workers set left_at = $2 where id = $1
