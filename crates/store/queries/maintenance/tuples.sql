-- Dead and live tuples of the queue's tables.
select relname::text as name, n_dead_tup as dead, n_live_tup as live, autovacuum_count as autovacuums
from pg_stat_user_tables
where relname in ('shards', 'sweeps', 'sweep_tallies', 'outputs')
order by relname
