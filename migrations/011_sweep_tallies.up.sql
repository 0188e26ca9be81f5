-- A sweep's counters move off its row into tallies: each change appends the
-- sweep's next tally (the latest plus the change, `seq` one higher) and
-- deletes the one before, under a lock on the sweep's tallies. A sweep row
-- updated on every commit keeps every version made while a long transaction
-- elsewhere holds back the xmin horizon, and each commit then walks all of
-- them; the latest tally is instead the first entry of a backward scan of the
-- primary key, whatever lies behind it. The sweep row changes only with its state.
create table sweep_tallies (
    sweep_id          bigint  not null,
    seq               bigint  not null,
    total_shards      integer not null,
    shards_done       integer not null,
    shards_failed     integer not null,
    shards_cancelled  integer not null,
    inferences_total  bigint  not null,
    inferences_done   bigint  not null,
    inferences_failed bigint  not null,
    failed_items      bigint  not null,
    primary key (sweep_id, seq)
);
insert into sweep_tallies
select id, 0, total_shards, shards_done, shards_failed, shards_cancelled, inferences_total, inferences_done, inferences_failed, failed_items
from sweeps;
alter table sweeps
    drop column total_shards,
    drop column shards_done,
    drop column shards_failed,
    drop column shards_cancelled,
    drop column inferences_total,
    drop column inferences_done,
    drop column inferences_failed,
    drop column failed_items;
