insert into sweeps (name, spec_toml, resolved, priority, total_shards, inferences_total, content_hash)
values ($1, $2, $3, $4, $5, $6, $7)
returning id
