select count(*) from workers where last_seen > $1
