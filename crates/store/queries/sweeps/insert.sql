-- A sweep with its resolved form ($3, JSON in format $8).
insert into sweeps (name, spec_toml, resolved, priority, total_shards, inferences_total, content_hash, resolved_format)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning id
