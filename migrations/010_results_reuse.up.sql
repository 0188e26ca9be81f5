-- Results reused across sweeps: every shard carries the content key of its
-- (model, family) pair (the model and its card, the family, the items with
-- their labels, and the run settings that shape rows), and a sweep submitted
-- with a pair whose key a committed pair elsewhere holds adopts that pair's
-- parts instead of running them again. An adopted output names the shard that
-- computed its part.
alter table shards add column content_key text;
create index shards_content_key on shards (content_key, sweep_id) where content_key is not null;
alter table outputs add column reused_from bigint;
