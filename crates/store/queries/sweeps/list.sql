select w.id, w.name, w.state, w.priority, t.total_shards, t.shards_done, t.shards_failed, t.shards_cancelled,
       t.inferences_total, t.inferences_done, t.inferences_failed, t.failed_items, w.created_at, w.finished_at
from sweeps w
cross join lateral latest_tally(w.id) t
order by w.id
