-- The committed parts of the pair of content key $2 in sweep $1 that hold
-- images $3 (inclusive) to $4 (exclusive), with their checksums, in image order
-- (once: a source that holds the pair twice gives its first family's parts).
select distinct on (s.image_lo, s.ring) o.object_key, o.sha256
from shards s
join outputs o on o.shard_id = s.id
where s.sweep_id = $1 and s.content_key = $2 and s.state = 'done' and s.image_lo < $4 and s.image_hi > $3
order by s.image_lo, s.ring, s.family_idx, s.model_idx
