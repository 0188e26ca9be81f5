-- The statements that took the most of PostgreSQL's time (pg_stat_statements).
select regexp_replace(left(query, 100), '\s+', ' ', 'g') as query,
       calls,
       total_exec_time as total_ms,
       mean_exec_time as mean_ms,
       max_exec_time as max_ms
from pg_stat_statements
order by total_exec_time desc
limit $1
