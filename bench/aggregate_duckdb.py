"""DuckDB side of `just bench aggregate`: the report's summary metrics per
(model, family) as one SQL query over the result parts, as a user would write it.

Per image: its rows' sums, whether its reference point is labelled and right at
top-1 / top-5, whether every point is right; then per (model, family) the ratios
(docs/results.md; one column per metric of the table in
crates/domain/src/metrics/table.rs). Prints one JSON line: rows, seconds, peak RSS, the metrics.

usage: aggregate_duckdb.py PARTS_DIR THREADS
"""
import json
import resource
import sys
import time

import duckdb

QUERY = """
with per_image as (
    select model, family, family_index, image_index,
           count(*) as n,
           max(case when is_reference then 1 else 0 end) as has_reference,
           sum(fwd_pairs) as pairs,
           sum(fwd_top1_changes) as changes,
           sum(fwd_abs_diff) as abs,
           sum(fwd_top5_dist) as t5d,
           sum(fwd_top5_transitions) as tr,
           max(case when is_reference and label is not null then 1 else 0 end) as labelled,
           max(case when is_reference and label is not null and top5_class[1] = label then 1 else 0 end) as c1,
           max(case when is_reference and label is not null and list_contains(top5_class[1:5], label) then 1 else 0 end) as c5,
           bool_and(label is not null and top5_class[1] = label) as all_correct
    from read_parquet('{dir}/*.parquet')
    group by all
)
select model, family_index,
       sum(has_reference) as images,
       sum(n) as inferences,
       sum(c1) / nullif(sum(labelled), 0) as acc1,
       sum(c5) / nullif(sum(labelled), 0) as acc5,
       sum(changes) / nullif(sum(pairs), 0) as p_top1_change,
       sum(case when labelled = 1 and c1 = 1 then changes end) / nullif(sum(case when labelled = 1 and c1 = 1 then pairs end), 0) as p_top1_change_correct,
       sum(case when labelled = 1 and c1 = 0 then changes end) / nullif(sum(case when labelled = 1 and c1 = 0 then pairs end), 0) as p_top1_change_wrong,
       sum(abs) / nullif(sum(pairs), 0) as mac,
       sum(case when labelled = 1 and tr > 0 then 1 else 0 end) / nullif(sum(labelled), 0) as jagged_fraction,
       sum(case when labelled = 1 then tr else 0 end) / nullif(sum(labelled), 0) as mean_transitions,
       sum(case when labelled = 1 and all_correct then 1 else 0 end) / nullif(sum(labelled), 0) as worst_acc,
       avg(case when pairs > 0 then changes / pairs end) as flip_prob,
       avg(case when pairs > 0 then t5d / pairs end) as top5_dist,
       case when family = 'random_pairs' then 1 - sum(changes) / nullif(sum(pairs), 0) end as consistency
from per_image
group by model, family, family_index
order by model, family_index
"""


def main():
    parts, threads = sys.argv[1], int(sys.argv[2])
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    start = time.perf_counter()
    cur = con.execute(QUERY.format(dir=parts))
    cols = [d[0] for d in cur.description]
    results = [dict(zip(cols, r)) for r in cur.fetchall()]
    secs = time.perf_counter() - start
    rows = sum(r["inferences"] for r in results)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = [{k: (float(v) if not isinstance(v, str) and v is not None else v) for k, v in r.items()} for r in results]
    print(json.dumps({"rows": int(rows), "seconds": secs, "peak_rss_kb": peak, "results": out}))


if __name__ == "__main__":
    main()
