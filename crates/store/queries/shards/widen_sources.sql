-- Pairs of key-without-extent $1 computed in full (all their shards done),
-- other than the exact pair $2 (which would be adopted whole), newest first:
-- the grids a new pair may take rows from. (Called before the new sweep's
-- shards exist, so it cannot find itself.)
select sweep_id, family_idx, content_key
from shards
where wide_key = $1 and content_key <> $2
group by sweep_id, family_idx, content_key
having bool_and(state = 'done')
order by sweep_id desc
limit 8
