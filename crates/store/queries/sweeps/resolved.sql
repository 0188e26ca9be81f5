select resolved from sweeps where id = $1
