-- Inferences per second of a model's most recent $2 committed shards, per
-- execution provider.
select provider, sum(rows)::float8 / greatest(sum(seconds), 1e-9) as per_sec, count(*) as shards
from (select provider, rows, seconds from outputs where model_key = $1 order by committed_at desc limit $2) recent
group by provider
