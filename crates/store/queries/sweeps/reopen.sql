-- Reopen a sweep whose failed shards were requeued ($2 shards, $3 inferences).
update sweeps
set shards_failed     = shards_failed - $2,
    inferences_failed = inferences_failed - $3,
    state             = 'running',
    finished_at       = null
where id = $1
