-- What the rest of the fleet did while shard $1 lost its leases on the run of
-- workers $2, from when the run's first attempt was leased until $3 (the
-- current attempt, leased at $5, included): the attempts of other shards by
-- other workers that ended meanwhile (committed, failed, handed back, or lost
-- when their worker vanished) and how many were lost, and how many other
-- workers vanished (silent for a lease, $4 seconds, without leaving).
with losses as (
    select a.ended_at - make_interval(secs => a.wall_seconds) as leased_at
    from attempts a
    where a.shard_id = $1 and a.outcome = 'abandoned' and a.worker_id = any($2)
    union all
    select $5::timestamptz
),
win as (
    select least(min(leased_at), $3::timestamptz) as since from losses
),
others as (
    select a.outcome = 'abandoned' as lost
    from attempts a, win
    where a.ended_at >= win.since and a.ended_at <= $3 and a.shard_id <> $1 and a.worker_id <> all($2)
    union all
    select false
    from outputs o, win
    where o.committed_at >= win.since and o.committed_at <= $3 and o.shard_id <> $1 and o.reused_from is null and o.worker_id <> all($2)
)
select
    (select count(*) from others)::int4 as attempts,
    (select count(*) from others where lost)::int4 as lost,
    (select count(*) from workers w, win
     where w.id <> all($2) and w.left_at is null and w.last_seen >= win.since and w.last_seen < $3 - make_interval(secs => $4))::int4 as vanished,
    (select extract(epoch from $3 - since) from win)::float8 as window_seconds
