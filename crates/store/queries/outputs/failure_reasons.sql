-- The failed items of sweep $1 grouped by reason, most first (at most $2
-- reasons), each with one item's name.
select reason, count(*)::int8 as count, min(image_name) as example
from failed_items
where sweep_id = $1
group by reason
order by count(*) desc, reason
limit $2
