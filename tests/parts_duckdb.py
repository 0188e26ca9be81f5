"""Reads result parts with DuckDB, for the part-file test.

Prints JSON: {"<file>": {"columns": [names], "rows": [[values]]}}, each file
read on its own with `read_parquet`, and "all": the row count of the files
read together (one glob). Floats are given as the bits of their double (an
integer), so that no decimal form comes between.

usage: parts_duckdb.py DIR
"""
import glob
import json
import os
import struct
import sys

import duckdb


def exact(v):
    if isinstance(v, float):
        return struct.unpack("<q", struct.pack("<d", v))[0]
    if isinstance(v, list):
        return [exact(x) for x in v]
    return v


folder = sys.argv[1]
out = {}
for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
    rel = duckdb.sql(f"select * from read_parquet('{path}')")
    out[os.path.basename(path)] = {"columns": rel.columns, "rows": [exact(list(r)) for r in rel.fetchall()]}
out["all"] = duckdb.sql(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchall()[0][0]
print(json.dumps(out))
