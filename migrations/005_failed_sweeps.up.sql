-- A sweep that ends with failed shards ends `failed` (`done`: every shard
-- committed), and inferences that could not run (failed items, failed shards)
-- are counted apart from those that did.
alter table sweeps drop constraint sweeps_state_check;
alter table sweeps add constraint sweeps_state_check check (state in ('running', 'done', 'failed', 'cancelled'));
alter table sweeps add column inferences_failed bigint not null default 0;
update sweeps set state = 'failed' where state = 'done' and shards_failed > 0;
-- A worker that stopped cleanly said so; it no longer counts as live.
alter table workers add column left_at timestamptz;
