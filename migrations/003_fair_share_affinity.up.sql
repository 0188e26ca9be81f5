-- Claims go to one sweep at a time (fair share across sweeps by priority) and,
-- within it, prefer the models a worker holds (affinity): queued shards are
-- found by (sweep, model) in id order. The global queue index is no longer used.
create index shards_queued_sweep_model on shards (sweep_id, model_idx, id) where state = 'queued';
drop index shards_queued;

-- The model (object key) of each committed output, for shard sizing from the
-- throughput measured per (model, execution provider).
alter table outputs add column model_key text;
create index outputs_model_key on outputs (model_key, committed_at desc) where model_key is not null;
