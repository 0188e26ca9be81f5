-- Sweeps: the resolved spec and running counters (progress never needs count(*) scans).
create table sweeps (
    id               bigserial primary key,
    name             text        not null,
    spec_toml        text        not null,
    resolved         jsonb       not null,
    priority         integer     not null default 0,
    state            text        not null default 'running'
                     check (state in ('running', 'done', 'cancelled')),
    total_shards     integer     not null,
    shards_done      integer     not null default 0,
    shards_failed    integer     not null default 0,
    shards_cancelled integer     not null default 0,
    inferences_total bigint      not null,
    inferences_done  bigint      not null default 0,
    failed_items     bigint      not null default 0,
    created_at       timestamptz not null default now(),
    finished_at      timestamptz
);

-- Shards: one model x one family x a range of images. The claim path only ever
-- touches the partial index of queued shards.
create table shards (
    id           bigserial primary key,
    sweep_id     bigint      not null references sweeps (id) on delete cascade,
    model_idx    integer     not null,
    family_idx   integer     not null,
    image_lo     integer     not null,
    image_hi     integer     not null,
    inferences   bigint      not null,
    priority     integer     not null default 0,
    state        text        not null default 'queued'
                 check (state in ('queued', 'leased', 'done', 'failed', 'cancelled')),
    attempt      integer     not null default 0,
    max_attempts integer     not null,
    lease_epoch  bigint      not null default 0,
    worker_id    bigint,
    leased_until timestamptz,
    run_after    timestamptz not null default now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    last_error   text
);
create index shards_queued on shards (priority desc, id) where state = 'queued';
create index shards_leased on shards (leased_until) where state = 'leased';
create index shards_sweep_state on shards (sweep_id, state);

create table workers (
    id            bigserial primary key,
    name          text        not null,
    host          text        not null,
    device        text        not null,
    registered_at timestamptz not null default now(),
    last_seen     timestamptz not null default now()
);

-- The one committed output of a done shard. Files of other attempts may exist in
-- the object store; only the key recorded here counts.
create table outputs (
    shard_id     bigint primary key references shards (id) on delete cascade,
    sweep_id     bigint           not null,
    object_key   text             not null,
    rows         bigint           not null,
    sha256       text             not null,
    attempt      integer          not null,
    lease_epoch  bigint           not null,
    worker_id    bigint           not null,
    provider     text             not null,
    seconds      double precision not null,
    committed_at timestamptz      not null default now()
);
create index outputs_sweep on outputs (sweep_id, shard_id);

-- Items (images) of committed shards that could not be processed, with the reason.
create table failed_items (
    shard_id   bigint  not null references shards (id) on delete cascade,
    sweep_id   bigint  not null,
    image_idx  integer not null,
    image_name text    not null,
    reason     text    not null,
    primary key (shard_id, image_idx)
);
create index failed_items_sweep on failed_items (sweep_id);
