//! The coordinator as a service: the state behind every call and the caches
//! it keeps, with no transport in sight. The rules live beside it, by who
//! calls them: `workers.rs` (register, lease, heartbeat, commit, fail),
//! `sweeps.rs` (submit, status, list, retry, cancel) and `upkeep.rs` (the
//! reaper, readiness and the gauges); `grpc.rs` and the dashboard only
//! translate to and from them.

use crate::commits;
use crate::metrics;
use jagged_domain::lease::LeasePolicy;
use jagged_domain::share::FairShare;
use jagged_domain::spec::ResolvedSweep;
use jagged_proto::ServiceError;
use jagged_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Coordinator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease timing.
    pub policy: LeasePolicy,
    /// How often the reaper looks for expired leases.
    pub reap_interval: Duration,
    /// Largest gRPC message accepted or sent, bytes.
    pub max_message: usize,
    /// Prices per device-hour by device kind, for sweeps that give none.
    pub prices: jagged_domain::cost::Prices,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: LeasePolicy::default(),
            reap_interval: Duration::from_secs(2),
            max_message: jagged_proto::MAX_MESSAGE,
            prices: Default::default(),
        }
    }
}

/// The shared state behind every call.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) store: Store,
    pub(crate) config: Config,
    /// Resolved sweeps never change after submit, so caching them is safe; a std
    /// Mutex suffices since no lock is held across an await.
    sweeps: Arc<Mutex<HashMap<i64, Arc<ResolvedSweep>>>>,
    /// Each cached sweep's widened pairs (also fixed at submit).
    widenings: Arc<Mutex<HashMap<i64, Arc<Vec<jagged_store::Widened>>>>>,
    /// Held while a resolved sweep is read from PostgreSQL, so that many lease
    /// calls arriving together for a sweep not yet cached read it once.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// Counter samples per sweep, from status requests, for throughput and ETA.
    pub(crate) progress: Arc<Mutex<HashMap<i64, jagged_domain::progress::Progress>>>,
    /// Fair share across running sweeps, and when it was last synced (ms).
    pub(crate) share: Arc<Mutex<(FairShare, i64)>>,
    /// Concurrent commits, written together.
    pub(crate) commits: commits::GroupCommit,
    /// Prometheus metrics.
    pub(crate) metrics: metrics::Metrics,
}

impl Coordinator {
    /// A coordinator over a migrated store.
    pub fn new(store: Store, config: Config) -> Coordinator {
        Coordinator {
            store,
            config,
            sweeps: Default::default(),
            widenings: Default::default(),
            loading: Default::default(),
            progress: Default::default(),
            share: Default::default(),
            commits: Default::default(),
            metrics: metrics::Metrics::new(),
        }
    }

    /// The coordinator's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The store behind it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Its settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A store error as the caller should see it; a database that gives no
    /// connection is named by its address.
    pub fn store_err(&self, e: StoreError) -> ServiceError {
        match e {
            StoreError::Stale(_) => ServiceError::Stale(e.to_string()),
            StoreError::NoSweep(_) | StoreError::NoWorker(_) => ServiceError::NotFound(e.to_string()),
            e if e.no_connection() => ServiceError::Unavailable(format!(
                "PostgreSQL at {} gave no connection within 10 s (is it running and reachable?)",
                self.store.address()
            )),
            StoreError::Db(_) | StoreError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
            StoreError::Data(_) | StoreError::Format { .. } => ServiceError::Internal(e.to_string()),
            StoreError::BadKey { .. } | StoreError::Refused(_) => ServiceError::Invalid(e.to_string()),
        }
    }

    /// The prices per device-hour that apply to a sweep: the coordinator's,
    /// overridden by those given at its submit.
    pub async fn prices(&self, id: i64) -> Result<jagged_domain::cost::Prices, ServiceError> {
        let mut prices = self.config.prices.clone();
        prices.extend(self.store.prices(id).await.map_err(|e| self.store_err(e))?);
        Ok(prices)
    }

    /// What a sweep's attempts spent, with its prices.
    pub async fn spent(&self, id: i64) -> Result<(Vec<jagged_store::Spent>, jagged_domain::cost::Prices), ServiceError> {
        Ok((self.store.spent(id).await.map_err(|e| self.store_err(e))?, self.prices(id).await?))
    }

    /// A sweep's resolved form (cached: it never changes after submit).
    pub async fn resolved(&self, id: i64) -> Result<Arc<ResolvedSweep>, ServiceError> {
        if let Some(s) = self.sweeps.lock().unwrap().get(&id) {
            return Ok(s.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(s) = self.sweeps.lock().unwrap().get(&id) {
            return Ok(s.clone()); // read by the call this one waited for
        }
        let s = Arc::new(self.store.resolved(id).await.map_err(|e| self.store_err(e))?);
        self.sweeps.lock().unwrap().insert(id, s.clone());
        Ok(s)
    }

    /// A sweep's widened pairs (cached as its resolved form is).
    pub(crate) async fn widenings(&self, id: i64) -> Result<Arc<Vec<jagged_store::Widened>>, ServiceError> {
        if let Some(w) = self.widenings.lock().unwrap().get(&id) {
            return Ok(w.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(w) = self.widenings.lock().unwrap().get(&id) {
            return Ok(w.clone());
        }
        let w = Arc::new(self.store.widenings(id).await.map_err(|e| self.store_err(e))?);
        self.widenings.lock().unwrap().insert(id, w.clone());
        Ok(w)
    }

    /// Drops the cached forms of sweeps that are no longer in `running` (a
    /// status call reloads one if needed).
    pub(crate) fn keep_cached(&self, running: &[i64]) {
        self.sweeps.lock().unwrap().retain(|id, _| running.contains(id));
        self.widenings.lock().unwrap().retain(|id, _| running.contains(id));
    }

    /// Makes the next lease re-read the running sweeps (one was submitted,
    /// retried or cancelled).
    pub(crate) fn resync_share(&self) {
        self.share.lock().unwrap().1 = 0;
    }

    /// Workers that sent a heartbeat within the last three intervals.
    pub async fn live_workers(&self) -> Result<Vec<jagged_store::LiveWorker>, ServiceError> {
        let since = jagged_store::now_ms() - 3 * self.config.policy.heartbeat_ms;
        self.store.live_workers(since).await.map_err(|e| self.store_err(e))
    }
}
