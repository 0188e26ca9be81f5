alter table outputs drop column runtime;
alter table outputs drop column precision;
