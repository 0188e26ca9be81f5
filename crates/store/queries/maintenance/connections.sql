-- Connections to this database, this one included.
select count(*) from pg_stat_activity where datname = current_database()
