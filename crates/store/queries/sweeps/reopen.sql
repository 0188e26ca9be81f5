-- Reopen a sweep whose failed shards were requeued (its tally changes with it).
update sweeps set state = 'running', finished_at = null where id = $1
