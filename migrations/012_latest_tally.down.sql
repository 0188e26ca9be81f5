drop function latest_tally(bigint);
