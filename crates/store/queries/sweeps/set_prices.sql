-- Set a sweep's prices per device-hour.
update sweeps set prices = $2 where id = $1
