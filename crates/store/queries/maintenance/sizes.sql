-- Bytes (with indexes) and rows of the tables that grow with sweeps.
select 'shards' as name, pg_total_relation_size('shards') as bytes, (select count(*) from shards) as rows
union all
select 'outputs', pg_total_relation_size('outputs'), (select count(*) from outputs)
union all
select 'sweeps', pg_total_relation_size('sweeps'), (select count(*) from sweeps)
