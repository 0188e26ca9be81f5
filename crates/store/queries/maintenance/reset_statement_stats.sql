select pg_stat_statements_reset()
