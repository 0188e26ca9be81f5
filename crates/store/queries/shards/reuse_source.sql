-- The newest sweep whose shards of content key $1 are all done: the pair was
-- computed in full there, and its parts can be adopted. (Called before the new
-- sweep's shards exist, so it cannot find itself.)
select sweep_id
from shards
where content_key = $1
group by sweep_id
having bool_and(state = 'done')
order by sweep_id desc
limit 1
