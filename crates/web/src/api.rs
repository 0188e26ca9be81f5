//! The dashboard's JSON: `/api/sweeps` and `/api/sweeps/{id}`.

use jagged_domain::status::SweepStatus;
use std::collections::HashMap;

#[derive(serde::Serialize)]
pub(crate) struct ApiSweep {
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
