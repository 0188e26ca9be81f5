insert into workers (name, host, device, registered_at, last_seen)
values ($1, $2, $3, $4, $4)
returning id
