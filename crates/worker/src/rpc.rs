//! The worker's line to the coordinator: the client, and calls retried while
//! the coordinator is unreachable.

use crate::{WorkerConfig, WorkerError};
use jagged_proto::v1::worker_service_client::WorkerServiceClient;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A worker service client that sends the worker's token with every call.
pub(crate) type Client = WorkerServiceClient<tonic::service::interceptor::InterceptedService<Channel, jagged_proto::auth::WithToken>>;

/// A client of the coordinator `config` names, connecting at its first call.
pub(crate) fn connect(config: &WorkerConfig) -> Result<Client, WorkerError> {
    let channel = jagged_proto::transport::endpoint(&config.coordinator, config.tls_ca.as_deref())
        .map_err(WorkerError::Config)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect_lazy();
    let with_token = jagged_proto::auth::WithToken::new(config.token.as_ref()).map_err(WorkerError::Config)?;
    Ok(WorkerServiceClient::with_interceptor(channel, with_token).max_decoding_message_size(jagged_proto::MAX_MESSAGE))
}

/// Calls `f` until it succeeds or fails with a non-retryable status, backing off
/// up to 5 s between tries while the coordinator at `url` is unreachable. The
/// first failure is logged with the URL and its cause; while it lasts, a
/// reminder every 30 s (or when the cause changes).
pub(crate) async fn retry<T, F, Fut>(what: &str, url: &str, stop: &AtomicBool, mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut delay = Duration::from_millis(100);
    let mut said: Option<(String, Instant)> = None;
    loop {
        match f().await {
            Ok(v) => {
                if said.is_some() {
                    tracing::info!(call = what, coordinator = url, "coordinator reachable again");
                }
                return Ok(v);
            }
            Err(s) if jagged_proto::status_is_retryable(&s) && !stop.load(Ordering::Relaxed) => {
                let cause = jagged_proto::cause(&s);
                if said.as_ref().is_none_or(|(c, at)| *c != cause || at.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!(call = what, coordinator = url, error = %cause, "coordinator unavailable; retrying");
                    said = Some((cause, Instant::now()));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(s) => return Err(s),
        }
    }
}
