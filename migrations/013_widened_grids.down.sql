drop table widenings;
drop index shards_wide_key;
alter table shards drop column wide_key;
