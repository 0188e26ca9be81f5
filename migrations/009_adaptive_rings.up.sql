-- Adaptive sweeps (the `radius` family): a shard searches one ring of offsets;
-- the shard of the next ring is inserted when it commits, holding only the
-- images whose top-1 has not changed (`items`; null: every image of the range).
alter table shards add column ring integer not null default 0;
alter table shards add column items integer[];
-- The top-1 class of each of those images at the reference point (as the
-- first ring found it), so every ring compares against the same class.
alter table shards add column refs integer[];
