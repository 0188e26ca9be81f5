drop index outputs_model_key;
alter table outputs drop column model_key;
create index shards_queued on shards (priority desc, id) where state = 'queued';
drop index shards_queued_sweep_model;
