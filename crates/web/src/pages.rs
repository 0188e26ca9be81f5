//! The dashboard's pages as HTML (rendered on the server; each holds a
//! `#live` region its script re-fetches every two seconds).

use axum::response::Html;
use jagged_coordinator::SweepDetail;
use jagged_domain::cost::{Outcome, Totals};
use jagged_domain::status::{SweepState, SweepStatus};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem 2rem; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.4rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
a { color: #2456b3; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px #0001; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #e6e8ee; text-align: left; white-space: nowrap; }
th { font-weight: 600; background: #f2f4f8; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bar { width: 14rem; height: .75rem; background: #e6e8ee; border-radius: .4rem; overflow: hidden; display: flex; }
.bar .done { background: #3c9a5f; } .bar .failed { background: #c94a3d; } .bar .leased { background: #e0b040; }
.state { font-weight: 600; } .state.running { color: #2456b3; } .state.done { color: #3c9a5f; }
.state.failed { color: #c94a3d; } .state.cancelled { color: #777; }
.muted { color: #6b7280; } .cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: .8rem 0; }
.card { background: #fff; box-shadow: 0 1px 2px #0001; padding: .6rem 1rem; min-width: 9rem; }
.card .v { font-size: 1.3rem; font-weight: 600; font-variant-numeric: tabular-nums; } .card .k { color: #6b7280; font-size: .8rem; }
td.err { white-space: normal; max-width: 40rem; font-family: ui-monospace, monospace; font-size: .8rem; }
figure { display: inline-block; margin: .5rem; background: #fff; } figure svg { max-width: 32rem; height: auto; }
"#;

/// Re-fetches `#live` every two seconds and counts the updates on `<body>`.
const SCRIPT: &str = r#"
(function () {
  var live = document.getElementById('live'), n = 0;
  async function refresh() {
    try {
      var r = await fetch(live.dataset.src, { credentials: 'same-origin', cache: 'no-store' });
      if (!r.ok) return;
      live.innerHTML = await r.text();
      n += 1;
      document.body.dataset.updates = n;
      document.getElementById('updated').textContent = new Date().toLocaleTimeString();
    } catch (e) { /* the coordinator restarts: try again next time */ }
  }
  setInterval(refresh, 2000);
})();
"#;

pub(crate) fn page(title: &str, src: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · jagged" }
                    style { (PreEscaped(STYLE)) }
                }
                body data-updates="0" {
                    p.muted { a href="/" { "jagged" } " · updated " span #updated { "now" } " · refreshes every 2 s" }
                    div #live data-src=(src) { (body) }
                    script { (PreEscaped(SCRIPT)) }
                }
            }
        }
        .into_string(),
    )
}

fn bar(s: &SweepStatus) -> Markup {
    let pct = |n: u32| if s.total == 0 { 0.0 } else { 100.0 * n as f64 / s.total as f64 };
    html! {
        div.bar title=(format!("{} of {} shards done", s.done, s.total)) {
            div.done style=(format!("width:{:.2}%", pct(s.done))) {}
            div.failed style=(format!("width:{:.2}%", pct(s.failed))) {}
            div.leased style=(format!("width:{:.2}%", pct(s.leased))) {}
        }
    }
}

fn secs(s: f64) -> String {
    if s < 0.0 {
        return "-".into();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn cost(c: f64) -> String {
    if c < 0.0 {
        "no price".into()
    } else {
        format!("{c:.4}")
    }
}

pub(crate) fn overview(all: &[SweepStatus], workers: &[jagged_store::LiveWorker]) -> Markup {
    html! {
        h1 { "Sweeps" }
        @if all.is_empty() { p.muted { "No sweeps yet: " code { "jagged sweep submit <spec.toml>" } } }
        @else {
            table #sweeps {
                tr { th { "id" } th { "name" } th { "state" } th { "progress" } th { "shards" } th { "inferences" } th { "per second" } th { "ETA" } th { "device-s" } th { "est. cost" } }
                @for s in all {
                    tr data-sweep=(s.sweep_id) {
                        td.n { a href=(format!("/sweeps/{}", s.sweep_id)) { (s.sweep_id) } }
                        td { a href=(format!("/sweeps/{}", s.sweep_id)) { (s.name) } }
                        td { span class=(format!("state {}", s.state.as_str())) { (s.state.as_str()) } }
                        td { (bar(s)) }
                        td.n.shards-done { (s.done) "/" (s.total) }
                        td.n.inferences-done { (s.inferences_done) "/" (s.inferences_total) }
                        td.n { @if s.state == SweepState::Running { (format!("{:.0}", s.inferences_per_sec)) } @else { "-" } }
                        td.n { @if s.state == SweepState::Running { (secs(s.eta_secs)) } @else { "-" } }
                        td.n { (format!("{:.1}", s.busy_seconds + s.busy_seconds_lost)) }
                        td.n { (cost(s.estimated_cost)) }
                    }
                }
            }
        }
        h2 { "Workers (" (distinct_workers(workers)) " live)" }
        (workers_table(workers, None))
    }
}

fn distinct_workers(w: &[jagged_store::LiveWorker]) -> usize {
    let mut ids: Vec<i64> = w.iter().map(|w| w.id).collect();
    ids.dedup();
    ids.len()
}

fn workers_table(workers: &[jagged_store::LiveWorker], only: Option<(i64, &[String])>) -> Markup {
    let shown: Vec<&jagged_store::LiveWorker> = workers.iter().filter(|w| only.is_none_or(|(id, _)| w.sweep_id == Some(id))).collect();
    html! {
        @if shown.is_empty() { p.muted { "None." } }
        @else {
            table.workers {
                tr { th { "worker" } th { "host" } th { "device" } th { "doing" } th { "busy so far" } th { "last seen" } }
                @for w in shown {
                    tr {
                        td { (w.name) " " span.muted { "#" (w.id) } }
                        td { (w.host) }
                        td { (w.device) }
                        td {
                            @match (w.shard_id, w.sweep_id) {
                                (Some(shard), Some(sweep)) => {
                                    "shard " (shard) " of " a href=(format!("/sweeps/{sweep}")) { "sweep " (sweep) }
                                    @if let Some((_, models)) = only { @if let Some(m) = w.model_idx.and_then(|m| models.get(m as usize)) { " · " (m) } }
                                    " · images " (w.image_lo.unwrap_or(0)) "–" (w.image_hi.unwrap_or(0)) " · attempt " (w.attempt.unwrap_or(0))
                                }
                                _ => span.muted { "idle" },
                            }
                        }
                        td.n { @if let Some(b) = w.busy_seconds { (format!("{b:.1} s")) } }
                        td { (w.last_seen.format("%H:%M:%S").to_string()) }
                    }
                }
            }
        }
    }
}

pub(crate) fn sweep_view(d: &SweepDetail, report: Option<Markup>) -> Markup {
    let s = &d.status;
    let totals = Totals::of(&d.spent, &d.prices);
    html! {
        h1 { "Sweep " (s.sweep_id) ": " (s.name) " " span class=(format!("state {}", s.state.as_str())) #state { (s.state.as_str()) } }
        (bar(s))
        div.cards {
            div.card { div.v #shards-done { (s.done) } div.k { "of " (s.total) " shards done" } }
            div.card { div.v #inferences-done { (s.inferences_done) } div.k { "of " (s.inferences_total) " inferences" } }
            div.card { div.v { (s.queued) " / " (s.leased) } div.k { "shards queued / leased" } }
            div.card { div.v #shards-failed { (s.failed) } div.k { "shards failed · " (s.failed_items) " items failed" } }
            div.card { div.v { (format!("{:.0}", s.inferences_per_sec)) } div.k { "inferences/s · ETA " @if s.state == SweepState::Running { (secs(s.eta_secs)) } @else { "-" } } }
            div.card { div.v #device-seconds { (format!("{:.1}", totals.busy_done)) } div.k { "device-s committed · " (format!("{:.1}", totals.busy_lost)) " lost" } }
            div.card { div.v #cost { (totals.cost.map(|c| format!("{c:.4}")).unwrap_or_else(|| "no price".into())) } div.k { "estimated cost so far" } }
        }
        h2 { "Models" }
        table #models {
            tr { th { "model" } th { "queued" } th { "leased" } th { "done" } th { "failed" } th { "inferences done" } th { "planned" } }
            @for (i, m) in d.models.iter().enumerate() {
                @let of = |state: &str| d.by_model.iter().filter(|p| p.model_idx as usize == i && p.state == state).map(|p| (p.shards, p.inferences)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                @let planned: i64 = d.by_model.iter().filter(|p| p.model_idx as usize == i).map(|p| p.inferences).sum();
                tr {
                    td { (m) }
                    td.n { (of("queued").0) } td.n { (of("leased").0) } td.n { (of("done").0) } td.n { (of("failed").0) }
                    td.n { (of("done").1) } td.n { (planned) }
                }
            }
        }
        h2 { "Workers on this sweep" }
        (workers_table(&d.workers, Some((s.sweep_id, &d.models))))
        h2 { "Cost" }
        p.muted { "Device-seconds are the busy time of the execution provider (inside " code { "session.run" } "). Lost: attempts that failed, were handed back or abandoned. Prices per device-hour: "
            @if d.prices.is_empty() { "none given" } @else { (d.prices.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")) } "." }
        @if d.spent.is_empty() { p.muted { "Nothing spent yet." } }
        table #cost-table {
            tr { th { "model" } th { "worker" } th { "device" } th { "outcome" } th { "attempts" } th { "device-s" } th { "wall s" } th { "inferences" } th { "per device-s" } }
            @for l in &d.spent {
                tr {
                    td { (d.models.get(l.model_idx).map(String::as_str).unwrap_or("?")) }
                    td { (l.worker) } td { (l.device) }
                    td { @if l.outcome == Outcome::Done { "done" } @else { span.state.failed { (l.outcome.as_str()) } } }
                    td.n { (l.attempts) } td.n { (format!("{:.2}", l.busy_seconds)) } td.n { (format!("{:.2}", l.wall_seconds)) }
                    td.n { (l.inferences) }
                    td.n { @if l.outcome == Outcome::Done && l.busy_seconds > 0.0 { (format!("{:.1}", l.inferences as f64 / l.busy_seconds)) } }
                }
            }
        }
        @if !s.errors.is_empty() {
            h2 { "Failed shards" }
            table #failed-shards {
                tr { th { "shard" } th { "model" } th { "family" } th { "error" } }
                @for e in &s.errors { tr { td.n { (e.shard_id) } td { (e.model) } td { (e.family) } td.err { (e.error) } } }
            }
        }
        @if !d.failed_items.is_empty() {
            h2 { "Failed items" }
            table #failed-items {
                tr { th { "shard" } th { "model" } th { "family" } th { "image" } th { "reason" } }
                @for f in &d.failed_items {
                    tr {
                        td.n { (f.shard_id) }
                        td { (d.models.get(f.model_idx as usize).map(String::as_str).unwrap_or("?")) }
                        td { (d.families.get(f.family_idx as usize).map(String::as_str).unwrap_or("?")) }
                        td { (f.item.name) } td.err { (f.item.reason) }
                    }
                }
            }
        }
        @if let Some(r) = report { h2 { "Report" } (r) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(secs(-1.0), "-");
        assert_eq!(secs(59.4), "59s");
        assert_eq!(secs(61.0), "1m01s");
        assert_eq!(secs(7322.0), "2h02m");
    }
}
