alter table shards drop column refs;
alter table shards drop column items;
alter table shards drop column ring;
