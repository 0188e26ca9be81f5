-- Serialises submits of the same content until the transaction ends.
select pg_advisory_xact_lock(hashtextextended($1, 0))
