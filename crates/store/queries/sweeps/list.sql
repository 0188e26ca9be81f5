select id, name, state, priority, total_shards, shards_done, shards_failed, shards_cancelled,
       inferences_total, inferences_done, inferences_failed, failed_items, created_at, finished_at
from sweeps
order by id
