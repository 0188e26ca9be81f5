vacuum (analyze) shards, outputs, sweeps, sweep_tallies
