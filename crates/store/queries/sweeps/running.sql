-- Running sweeps and their priorities, for fair share.
select id, priority from sweeps where state = 'running' order by id
