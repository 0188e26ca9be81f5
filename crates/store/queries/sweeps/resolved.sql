select resolved, resolved_format from sweeps where id = $1
