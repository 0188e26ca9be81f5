-- Family $2 of sweep $1 as submitted (JSON), without reading the rest of its
-- resolved form (its image list can be large).
select resolved -> 'spec' -> 'families' -> $2
from sweeps
where id = $1
