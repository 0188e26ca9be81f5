vacuum shards, outputs, sweep_tallies
