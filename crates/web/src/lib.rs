//! The coordinator's web side, over its service (`jagged_coordinator::Coordinator`),
//! served by `jagged coordinator` beside gRPC: `/metrics` for Prometheus, and a live web
//! dashboard (all sweeps; one sweep's shards, models, workers, failures, cost,
//! and its report once done).
//!
//! Pages are rendered on the server; each holds a `#live` region that a few
//! lines of script re-fetch every two seconds, so an open page stays current
//! without a reload and nothing is loaded from elsewhere (no CDN). With an
//! admin token set, every dashboard route requires it: as `Authorization:
//! Bearer <token>`, or once as `?token=<token>`, which sets a cookie for the
//! rest of the visit. `/metrics` is open, as Prometheus scrapes expect.
#![deny(missing_docs)]

mod api;
mod auth;
mod pages;

use api::ApiSweep;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jagged_coordinator::{Coordinator, ServiceError};
use jagged_domain::status::{SweepState, SweepStatus};
use jagged_proto::auth::Token;
use maud::{html, Markup, PreEscaped};
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
pub(crate) struct Web {
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
        .layer(axum::middleware::from_fn_with_state(web.clone(), auth::require_admin))
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

fn error(e: ServiceError) -> Response {
    let status: tonic::Status = e.into();
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, status.message().to_string()).into_response()
}

async fn all_statuses(c: &Coordinator) -> Result<Vec<SweepStatus>, ServiceError> {
    let mut all = c.list().await?;
    all.reverse();
    Ok(all)
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

async fn index(State(web): State<Web>) -> Response {
    match index_markup(&web).await {
        Ok(m) => pages::page("sweeps", "/fragment/sweeps", m).into_response(),
        Err(e) => error(e),
    }
}

async fn index_fragment(State(web): State<Web>) -> Response {
    match index_markup(&web).await {
        Ok(m) => Html(m.into_string()).into_response(),
        Err(e) => error(e),
    }
}

async fn index_markup(web: &Web) -> Result<Markup, ServiceError> {
    let c = &web.coordinator;
    let all = all_statuses(c).await?;
    let workers = c.live_workers().await?;
    Ok(pages::overview(&all, &workers))
}

async fn sweep_page(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match sweep_markup(&web, id).await {
        Ok(m) => pages::page(&format!("sweep {id}"), &format!("/fragment/sweeps/{id}"), m).into_response(),
        Err(e) => error(e),
    }
}

async fn sweep_fragment(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match sweep_markup(&web, id).await {
        Ok(m) => Html(m.into_string()).into_response(),
        Err(e) => error(e),
    }
}

async fn sweep_markup(web: &Web, id: i64) -> Result<Markup, ServiceError> {
    let d = web.coordinator.detail(id).await?;
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
    Ok(pages::sweep_view(&d, report))
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
    let report = jagged_report::build_priced(c.store(), objects.as_ref(), id, &prices).await.map_err(|e| e.to_string())?;
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
