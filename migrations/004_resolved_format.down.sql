alter table sweeps drop column resolved_format;
