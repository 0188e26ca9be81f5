-- The SHA-256 of a sweep's resolved form (spec, models and images by content): a
-- second submit of the same sweep finds the first instead of doing the work twice.
alter table sweeps add column content_hash text;
create index sweeps_content_hash on sweeps (content_hash) where state <> 'cancelled';
