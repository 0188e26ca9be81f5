-- The newest sweep other than $2 whose shards of content key $1 are all done:
-- the pair was computed in full there, and its parts can be adopted.
select sweep_id
from shards
where content_key = $1 and sweep_id <> $2
group by sweep_id
having bool_and(state = 'done')
order by sweep_id desc
limit 1
