alter table shards drop column lost_by;
alter table shards drop column lost;
alter table shards drop column failures;
