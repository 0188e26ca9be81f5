-- Cost accounting: how long each attempt kept its execution provider busy.
-- Committed attempts carry it on their output; attempts that ended otherwise
-- (failed, handed back by a stopping worker, abandoned by a vanished one) get
-- a row in `attempts`. A leased shard holds its current attempt's busy time so
-- far, from heartbeats, which is what an abandoned attempt is charged.
alter table outputs add column busy_seconds double precision not null default 0;
alter table shards add column busy_seconds double precision not null default 0;
alter table shards add column leased_at timestamptz;
alter table sweeps add column prices jsonb not null default '{}';

create table attempts (
    shard_id     bigint           not null references shards (id) on delete cascade,
    lease_epoch  bigint           not null,
    sweep_id     bigint           not null,
    model_idx    integer          not null,
    worker_id    bigint,
    outcome      text             not null check (outcome in ('failed', 'handed_back', 'abandoned')),
    busy_seconds double precision not null,
    wall_seconds double precision not null,
    ended_at     timestamptz      not null,
    primary key (shard_id, lease_epoch)
);
create index attempts_sweep on attempts (sweep_id);
