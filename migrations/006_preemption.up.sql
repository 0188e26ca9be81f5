-- Preemption is not failure: lost leases (a worker vanished, or stopped and
-- handed its shard back) are counted apart from reported failures, with their
-- own budget; the workers that vanished holding a shard one after another tell
-- a shard that kills its workers.
alter table shards add column failures integer not null default 0;
alter table shards add column lost integer not null default 0;
alter table shards add column lost_by bigint[] not null default '{}';
update shards set failures = attempt where last_error is not null;
