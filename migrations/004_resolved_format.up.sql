-- The layout version of `sweeps.resolved` (JSON): rows written before versions
-- were recorded are format 1. Readers accept the formats they know and refuse
-- newer ones by name (`jagged_domain::spec::RESOLVED_FORMAT`).
alter table sweeps add column resolved_format integer not null default 1;
