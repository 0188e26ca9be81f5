insert into failed_items (shard_id, sweep_id, image_idx, image_name, reason)
select $1, $2, i, n, r
from unnest($3::int[], $4::text[], $5::text[]) as t (i, n, r)
