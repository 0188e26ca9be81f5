alter table sweeps
    add column total_shards      integer not null default 0,
    add column shards_done       integer not null default 0,
    add column shards_failed     integer not null default 0,
    add column shards_cancelled  integer not null default 0,
    add column inferences_total  bigint  not null default 0,
    add column inferences_done   bigint  not null default 0,
    add column inferences_failed bigint  not null default 0,
    add column failed_items      bigint  not null default 0;
update sweeps w
set total_shards = t.total_shards, shards_done = t.shards_done, shards_failed = t.shards_failed,
    shards_cancelled = t.shards_cancelled, inferences_total = t.inferences_total, inferences_done = t.inferences_done,
    inferences_failed = t.inferences_failed, failed_items = t.failed_items
from (select distinct on (sweep_id) * from sweep_tallies order by sweep_id, seq desc) t
where t.sweep_id = w.id;
drop table sweep_tallies;
