drop table attempts;
alter table sweeps drop column prices;
alter table shards drop column leased_at;
alter table shards drop column busy_seconds;
alter table outputs drop column busy_seconds;
