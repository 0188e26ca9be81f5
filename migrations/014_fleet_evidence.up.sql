-- A shard lost on several workers in a row is weighed against the rest of the
-- fleet: the attempts that ended (lost or committed) in the same window, read
-- by time.
create index attempts_ended_at on attempts (ended_at);
create index outputs_committed_at on outputs (committed_at);
