-- Serialise changes to sweep $1's tallies until the transaction ends (taken
-- after any shard row locks; see tally.sql).
select pg_advisory_xact_lock(1784, ($1 % 2147483647)::integer)
