drop table failed_items;
drop table outputs;
drop table workers;
drop table shards;
drop table sweeps;
