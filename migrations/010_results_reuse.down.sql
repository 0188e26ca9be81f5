alter table outputs drop column reused_from;
drop index shards_content_key;
alter table shards drop column content_key;
