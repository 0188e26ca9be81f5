//! The coordinator's HTTP side: `/metrics` for Prometheus, and a live web
//! dashboard (all sweeps; one sweep's shards, models, workers, failures, cost,
//! and its report once done).
//!
//! Pages are rendered on the server; each holds a `#live` region that a few
//! lines of script re-fetch every two seconds, so an open page stays current
//! without a reload and nothing is loaded from elsewhere (no CDN). With an
//! admin token set, every dashboard route requires it: as `Authorization:
//! Bearer <token>`, or once as `?token=<token>`, which sets a cookie for the
//! rest of the visit. `/metrics` is open, as Prometheus scrapes expect.

use crate::Coordinator;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use jagged_domain::cost::{Outcome, Totals};
use jagged_domain::status::{SweepState, SweepStatus};
use jagged_proto::auth::Token;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the dashboard needs besides the coordinator.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// The admin token, required by every dashboard route when set.
    pub admin: Option<Token>,
    /// The object store results are in: with it, a finished sweep's page shows
    /// its report (built on first request, then kept).
    pub objects: Option<Arc<dyn object_store::ObjectStore>>,
}

#[derive(Clone)]
struct Web {
    coordinator: Coordinator,
    config: WebConfig,
    /// Built reports by sweep, in a private folder.
    reports: Arc<Mutex<HashMap<i64, std::path::PathBuf>>>,
    report_root: Arc<tempfile::TempDir>,
}

/// `/metrics` only.
pub fn metrics_router(coordinator: Coordinator) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(coordinator)
}

/// The dashboard, and `/metrics`.
pub fn dashboard_router(coordinator: Coordinator, config: WebConfig) -> std::io::Result<Router> {
    let web = Web { coordinator: coordinator.clone(), config, reports: Default::default(), report_root: Arc::new(tempfile::tempdir()?) };
    let pages = Router::new()
        .route("/", get(index))
        .route("/fragment/sweeps", get(index_fragment))
        .route("/sweeps/{id}", get(sweep_page))
        .route("/fragment/sweeps/{id}", get(sweep_fragment))
        .route("/sweeps/{id}/report/{*file}", get(report_file))
        .route("/api/sweeps", get(api_sweeps))
        .route("/api/sweeps/{id}", get(api_sweep))
        .layer(axum::middleware::from_fn_with_state(web.clone(), require_admin))
        .with_state(web);
    Ok(pages.merge(metrics_router(coordinator)))
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, mut shutdown: tokio::sync::watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics(State(c): State<Coordinator>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], c.metrics().encode()).into_response()
}

const COOKIE: &str = "jagged_admin";

async fn require_admin(State(web): State<Web>, req: Request, next: Next) -> Response {
    let Some(want) = &web.config.admin else { return next.run(req).await };
    // Once as ?token=...: set the cookie and drop the token from the address.
    if let Some(q) = req.uri().query() {
        if let Some(t) = q.split('&').find_map(|kv| kv.strip_prefix("token=")) {
            let t = percent_decode(t);
            if want.matches(&t) {
                let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", cookie_safe(&t));
                let mut r = Redirect::to(req.uri().path()).into_response();
                r.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("a cookie of safe characters"));
                return r;
            }
        }
    }
    if presented(req.headers()).is_some_and(|t| want.matches(&t)) {
        return next.run(req).await;
    }
    let page = html! {
        (DOCTYPE)
        html { head { title { "jagged: admin token required" } } body {
            h1 { "The admin token is required" }
            p { "This coordinator has an admin token. Open this page once as " code { "?token=<JAGGED_ADMIN_TOKEN>" }
                ", or send " code { "Authorization: Bearer <token>" } "." }
        } }
    };
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Html(page.into_string())).into_response()
}

/// The token a request presents: a bearer header or the dashboard's cookie.
fn presented(h: &HeaderMap) -> Option<String> {
    if let Some(t) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(t.to_string());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(&format!("{COOKIE}=")).map(percent_decode))
}

/// `%XX` escapes decoded (and `+` as a space, as forms send it).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token as a cookie value: anything outside the safe set percent-encoded.
fn cookie_safe(t: &str) -> String {
    t.bytes().map(|c| if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) { (c as char).to_string() } else { format!("%{c:02X}") }).collect()
}

fn error(e: crate::ServiceError) -> Response {
    let status: tonic::Status = e.into();
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, status.message().to_string()).into_response()
}

// ----- data ------------------------------------------------------------------

async fn all_statuses(c: &Coordinator) -> Result<Vec<SweepStatus>, crate::ServiceError> {
    let rows = c.store.sweeps().await.map_err(|e| c.store_err(e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.iter().rev() {
        out.push(c.status(r.id).await?);
    }
    Ok(out)
}

/// Everything one sweep's page shows.
struct Detail {
    status: SweepStatus,
    models: Vec<String>,
    families: Vec<String>,
    by_model: Vec<jagged_store::ModelProgress>,
    workers: Vec<jagged_store::LiveWorker>,
    failed_items: Vec<jagged_store::CommittedFailure>,
    spent: Vec<jagged_store::Spent>,
    prices: jagged_domain::cost::Prices,
}

async fn detail(c: &Coordinator, id: i64) -> Result<Detail, crate::ServiceError> {
    let status = c.status(id).await?;
    let resolved = c.resolved(id).await?;
    let store = &c.store;
    let by_model = store.model_progress(id).await.map_err(|e| c.store_err(e))?;
    let since = jagged_store::now_ms() - 3 * c.config.policy.heartbeat_ms;
    let workers = store.live_workers(since).await.map_err(|e| c.store_err(e))?;
    let mut failed_items = store.failed_items(id).await.map_err(|e| c.store_err(e))?;
    failed_items.truncate(100);
    let (spent, prices) = c.spent(id).await?;
    Ok(Detail {
        status,
        models: resolved.models.iter().map(|m| m.name.clone()).collect(),
        families: (0..resolved.spec.families.len()).map(|i| resolved.spec.family_label(i)).collect(),
        by_model,
        workers,
        failed_items,
        spent,
        prices,
    })
}

#[derive(serde::Serialize)]
struct ApiSweep {
    id: i64,
    name: String,
    state: String,
    shards: HashMap<&'static str, u32>,
    inferences_done: i64,
    inferences_failed: i64,
    inferences_total: i64,
    failed_items: i64,
    workers_alive: u32,
    inferences_per_sec: f64,
    eta_secs: f64,
    device_seconds: f64,
    lost_device_seconds: f64,
    estimated_cost: Option<f64>,
}

impl From<&SweepStatus> for ApiSweep {
    fn from(s: &SweepStatus) -> ApiSweep {
        ApiSweep {
            id: s.sweep_id,
            name: s.name.clone(),
            state: s.state.as_str().into(),
            shards: [
                ("total", s.total),
                ("queued", s.queued),
                ("leased", s.leased),
                ("done", s.done),
                ("failed", s.failed),
                ("cancelled", s.cancelled),
            ]
            .into(),
            inferences_done: s.inferences_done,
            inferences_failed: s.inferences_failed,
            inferences_total: s.inferences_total,
            failed_items: s.failed_items,
            workers_alive: s.workers_alive,
            inferences_per_sec: s.inferences_per_sec,
            eta_secs: s.eta_secs,
            device_seconds: s.busy_seconds,
            lost_device_seconds: s.busy_seconds_lost,
            estimated_cost: (s.estimated_cost >= 0.0).then_some(s.estimated_cost),
        }
    }
}

async fn api_sweeps(State(web): State<Web>) -> Response {
    match all_statuses(&web.coordinator).await {
        Ok(all) => axum::Json(all.iter().map(ApiSweep::from).collect::<Vec<_>>()).into_response(),
        Err(e) => error(e),
    }
}

async fn api_sweep(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match web.coordinator.status(id).await {
        Ok(s) => axum::Json(ApiSweep::from(&s)).into_response(),
        Err(e) => error(e),
    }
}

// ----- pages -----------------------------------------------------------------

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

fn page(title: &str, src: &str, body: Markup) -> Html<String> {
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

fn overview(all: &[SweepStatus], workers: &[jagged_store::LiveWorker]) -> Markup {
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

fn sweep_view(d: &Detail, report: Option<Markup>) -> Markup {
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

async fn index(State(web): State<Web>) -> Response {
    match index_markup(&web).await {
        Ok(m) => page("sweeps", "/fragment/sweeps", m).into_response(),
        Err(e) => error(e),
    }
}

async fn index_fragment(State(web): State<Web>) -> Response {
    match index_markup(&web).await {
        Ok(m) => Html(m.into_string()).into_response(),
        Err(e) => error(e),
    }
}

async fn index_markup(web: &Web) -> Result<Markup, crate::ServiceError> {
    let c = &web.coordinator;
    let all = all_statuses(c).await?;
    let since = jagged_store::now_ms() - 3 * c.config.policy.heartbeat_ms;
    let workers = c.store.live_workers(since).await.map_err(|e| c.store_err(e))?;
    Ok(overview(&all, &workers))
}

async fn sweep_page(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match sweep_markup(&web, id).await {
        Ok(m) => page(&format!("sweep {id}"), &format!("/fragment/sweeps/{id}"), m).into_response(),
        Err(e) => error(e),
    }
}

async fn sweep_fragment(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match sweep_markup(&web, id).await {
        Ok(m) => Html(m.into_string()).into_response(),
        Err(e) => error(e),
    }
}

async fn sweep_markup(web: &Web, id: i64) -> Result<Markup, crate::ServiceError> {
    let d = detail(&web.coordinator, id).await?;
    let report = if d.status.state == SweepState::Running {
        None
    } else {
        Some(match report_dir(web, id).await {
            Ok(Some(dir)) => {
                let table = std::fs::read_to_string(dir.join(TABLE)).unwrap_or_default();
                let mut figures: Vec<String> = std::fs::read_dir(dir.join("figures"))
                    .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".svg")).collect())
                    .unwrap_or_default();
                figures.sort();
                html! {
                    p { a href=(format!("/sweeps/{id}/report/report.html")) { "The whole report" } " · "
                        a href=(format!("/sweeps/{id}/report/summary.csv")) { "summary.csv" } " · "
                        a href=(format!("/sweeps/{id}/report/cost.csv")) { "cost.csv" } " · "
                        a href=(format!("/sweeps/{id}/report/protocol.json")) { "protocol.json" } }
                    div #summary { (PreEscaped(table)) }
                    @for f in figures {
                        figure { img src=(format!("/sweeps/{id}/report/figures/{f}")) alt=(f) width="480"; figcaption { (f) } }
                    }
                }
            }
            Ok(None) => {
                html! { p.muted { "Start the coordinator with " code { "--store" } " to see the report here, or run " code { "jagged report " (id) } "." } }
            }
            Err(e) => html! { p.state.failed { "The report could not be built: " (e) } },
        })
    };
    Ok(sweep_view(&d, report))
}

/// The report's summary table as HTML, kept beside the report's files.
const TABLE: &str = "dashboard-table.html";

/// The folder of a finished sweep's built report (built on first request).
async fn report_dir(web: &Web, id: i64) -> Result<Option<std::path::PathBuf>, String> {
    let Some(objects) = &web.config.objects else { return Ok(None) };
    if let Some(d) = web.reports.lock().unwrap().get(&id) {
        return Ok(Some(d.clone()));
    }
    let c = &web.coordinator;
    let prices = c.prices(id).await.map_err(|e| e.to_string())?;
    let report = jagged_report::build_priced(&c.store, objects.as_ref(), id, &prices).await.map_err(|e| e.to_string())?;
    let dir = web.report_root.path().join(id.to_string());
    let d = dir.clone();
    tokio::task::spawn_blocking(move || {
        report.write(&d)?;
        let table = report.summary_table().html().into_string();
        std::fs::write(d.join(TABLE), table).map_err(|e| jagged_report::ReportError::Io(TABLE.into(), e))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    web.reports.lock().unwrap().insert(id, dir.clone());
    Ok(Some(dir))
}

async fn report_file(State(web): State<Web>, Path((id, file)): Path<(i64, String)>) -> Response {
    let safe = !file.is_empty() && file.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'));
    if !safe {
        return (StatusCode::BAD_REQUEST, "bad file name").into_response();
    }
    match web.coordinator.status(id).await {
        Ok(s) if s.state == SweepState::Running => return (StatusCode::CONFLICT, "the sweep is still running").into_response(),
        Ok(_) => {}
        Err(e) => return error(e),
    }
    let dir = match report_dir(&web, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return (StatusCode::NOT_FOUND, "this coordinator has no --store: run `jagged report`").into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let kind = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file in the report").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_the_header_or_the_cookie_and_decoded() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; jagged_admin=s%3Dcr%2Bet; c=d".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("s=cr+et"));
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("xyz"));
        assert_eq!(presented(&HeaderMap::new()), None);
        assert_eq!(cookie_safe("s=cr+et"), "s%3Dcr%2Bet");
        assert_eq!(percent_decode(&cookie_safe("a b/ü")), "a b/ü");
        assert_eq!(percent_decode("50%"), "50%");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(secs(-1.0), "-");
        assert_eq!(secs(59.4), "59s");
        assert_eq!(secs(61.0), "1m01s");
        assert_eq!(secs(7322.0), "2h02m");
    }
}
