alter table workers drop column left_at;
update sweeps set state = 'done' where state = 'failed';
alter table sweeps drop column inferences_failed;
alter table sweeps drop constraint sweeps_state_check;
alter table sweeps add constraint sweeps_state_check check (state in ('running', 'done', 'cancelled'));
