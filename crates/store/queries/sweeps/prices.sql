-- The prices per device-hour given at a sweep's submit.
select prices from sweeps where id = $1
