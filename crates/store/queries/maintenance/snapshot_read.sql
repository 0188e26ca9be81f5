-- A read that takes the snapshot (REPEATABLE READ takes it at the first read).
select count(*) from outputs
