-- Insert planned shards for sweep $1 from parallel arrays, each with its pair's
-- content key and its key without the grid's extent.
insert into shards (sweep_id, model_idx, family_idx, image_lo, image_hi, inferences, priority, max_attempts, ring, content_key, wide_key)
select $1, m, f, lo, hi, n, $7, $8, r, k, w
from unnest($2::int[], $3::int[], $4::int[], $5::int[], $6::bigint[], $9::int[], $10::text[], $11::text[]) as t (m, f, lo, hi, n, r, k, w)
