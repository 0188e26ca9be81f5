drop index outputs_committed_at;
drop index attempts_ended_at;
