-- A sweep with its resolved form ($3, JSON in format $6), and its first tally
-- ($7 shards of $8 inferences planned).
with sweep as (
    insert into sweeps (name, spec_toml, resolved, priority, content_hash, resolved_format)
    values ($1, $2, $3, $4, $5, $6)
    returning id
), tally as (
    insert into sweep_tallies (sweep_id, seq, total_shards, shards_done, shards_failed, shards_cancelled, inferences_total, inferences_done,
                               inferences_failed, failed_items)
    select id, 0, $7, 0, 0, 0, $8, 0, 0, 0 from sweep
)
select id from sweep
