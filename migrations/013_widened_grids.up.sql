-- Grids widened from an earlier pair: every shard also carries its pair's key
-- without the grid's extent (the same model, items, run settings and family
-- bar `max_shift`, `from`/`to` or `steps`), so a new sweep finds a finished
-- pair of the same family with another extent; and each widened pair of a
-- sweep records where its taken rows come from: the earlier sweep, that pair's
-- content key (its committed parts) and its family.
alter table shards add column wide_key text;
create index shards_wide_key on shards (wide_key, sweep_id) where wide_key is not null;
create table widenings (
    sweep_id    bigint  not null references sweeps (id) on delete cascade,
    model_idx   integer not null,
    family_idx  integer not null,
    from_sweep  bigint  not null,
    from_key    text    not null,
    from_family jsonb   not null,
    primary key (sweep_id, model_idx, family_idx)
);
