select count(*) from workers where last_seen > $1 and left_at is null
