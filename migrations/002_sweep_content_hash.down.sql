drop index sweeps_content_hash;
alter table sweeps drop column content_hash;
