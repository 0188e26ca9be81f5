//! The gRPC transport: the worker and admin services (with health and
//! reflection) over the [`Coordinator`] service. Each handler translates the
//! wire request into the service's call and its answer back; the rules are
//! the service's.

use crate::sweeps::Submission;
use crate::workers::FailReport;
use crate::Coordinator;
use jagged_domain::spec::ResolvedSweep;
use jagged_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use jagged_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use jagged_proto::v1::{
    self as pb, CancelRequest, CompleteManyRequest, CompleteManyResponse, CompleteRequest, CompleteResponse, FailRequest, FailResponse,
    HeartbeatRequest, HeartbeatResponse, LeaseRequest, LeaseResponse, ListRequest, ListResponse, RegisterRequest, RegisterResponse, RetryRequest,
    RetryResponse, StatusRequest, SubmitRequest, SubmitResponse,
};
use jagged_proto::ServiceError;
use jagged_store::{Commit, Held, Output};
use std::future::Future;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Who may call: the bearer tokens of workers and of admin clients (`None`: no
/// token required, for a coordinator on loopback).
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Token of the worker service.
    pub worker: Option<jagged_proto::auth::Token>,
    /// Token of the admin service.
    pub admin: Option<jagged_proto::auth::Token>,
}

/// A commit as the store takes it.
fn commit_of(r: CompleteRequest) -> Commit {
    let out = Output {
        object_key: r.object_key,
        rows: r.rows,
        sha256: r.sha256,
        lease_epoch: r.lease_epoch,
        worker_id: r.worker_id,
        provider: r.execution_provider,
        seconds: r.seconds,
        model_key: (!r.model_key.is_empty()).then_some(r.model_key),
        busy_seconds: r.busy_seconds,
        precision: (!r.precision.is_empty()).then_some(r.precision),
        runtime: (!r.runtime.is_empty()).then_some(r.runtime),
    };
    let failed = r.failed_items.into_iter().map(Into::into).collect();
    let next_ring = r.next_ring.iter().map(|n| (n.index, n.reference_top1)).collect();
    Commit { shard: r.shard_id, epoch: r.lease_epoch, worker: r.worker_id, out, failed, next_ring }
}

#[tonic::async_trait]
impl WorkerService for Coordinator {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let r = req.into_inner();
        let reg = Coordinator::register(self, &r.name, &r.host, &r.device).await?;
        Ok(Response::new(RegisterResponse { worker_id: reg.worker_id, lease_ms: reg.lease_ms, heartbeat_ms: reg.heartbeat_ms }))
    }

    async fn lease(&self, req: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        let r = req.into_inner();
        let only = (r.sweep_id != 0).then_some(r.sweep_id);
        let tasks = Coordinator::lease(self, r.worker_id, r.max_shards, &r.loaded_models, only).await?;
        Ok(Response::new(LeaseResponse { shards: tasks.into_iter().map(pb::ShardTask::from).collect() }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let r = req.into_inner();
        let held: Vec<Held> = r.held.iter().map(|h| Held { shard: h.shard_id, epoch: h.lease_epoch, busy: h.busy_seconds }).collect();
        let beat = Coordinator::heartbeat(self, r.worker_id, &held, r.leaving).await?;
        Ok(Response::new(HeartbeatResponse { lost: beat.lost, lease_deadline_ms: beat.deadline_ms }))
    }

    async fn complete(&self, req: Request<CompleteRequest>) -> Result<Response<CompleteResponse>, Status> {
        let result = self.commit_all(vec![commit_of(req.into_inner())]).await?.pop();
        result.unwrap_or_else(|| Err(ServiceError::Internal("no commit outcome".into())))?;
        Ok(Response::new(CompleteResponse {}))
    }

    async fn complete_many(&self, req: Request<CompleteManyRequest>) -> Result<Response<CompleteManyResponse>, Status> {
        let commits = req.into_inner().commits.into_iter().map(commit_of).collect();
        let outcomes = self
            .commit_all(commits)
            .await?
            .into_iter()
            .map(|r| match r {
                Ok(()) => pb::CommitOutcome { code: tonic::Code::Ok as i32, message: String::new() },
                Err(e) => {
                    let s = Status::from(e);
                    pb::CommitOutcome { code: s.code() as i32, message: s.message().to_string() }
                }
            })
            .collect();
        Ok(Response::new(CompleteManyResponse { outcomes }))
    }

    async fn fail(&self, req: Request<FailRequest>) -> Result<Response<FailResponse>, Status> {
        let r = req.into_inner();
        let report = FailReport {
            worker: r.worker_id,
            shard: r.shard_id,
            epoch: r.lease_epoch,
            error: r.error,
            retryable: r.retryable,
            handed_back: r.handed_back,
            busy_seconds: r.busy_seconds,
        };
        let state = Coordinator::fail(self, report).await?;
        Ok(Response::new(FailResponse { state: pb::ShardState::from(state) as i32 }))
    }
}

#[tonic::async_trait]
impl AdminService for Coordinator {
    async fn submit(&self, req: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let r = req.into_inner();
        let wire = r.sweep.ok_or_else(|| ServiceError::Invalid("malformed message: `SubmitRequest.sweep` is missing".into()))?;
        let sweep = ResolvedSweep::try_from(wire).map_err(ServiceError::from)?;
        let s =
            Coordinator::submit(self, Submission { sweep, spec_toml: r.spec_toml, prices: r.prices.into_iter().collect(), again: r.again }).await?;
        Ok(Response::new(s.into()))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        Ok(Response::new(Coordinator::status(self, req.into_inner().sweep_id).await?.into()))
    }

    async fn list(&self, _req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let sweeps = Coordinator::list(self).await?.into_iter().map(Into::into).collect();
        Ok(Response::new(ListResponse { sweeps }))
    }

    async fn retry(&self, req: Request<RetryRequest>) -> Result<Response<RetryResponse>, Status> {
        let r = req.into_inner();
        let shard_ids = Coordinator::retry(self, r.sweep_id, (r.shard_id != 0).then_some(r.shard_id)).await?;
        Ok(Response::new(RetryResponse { shard_ids }))
    }

    async fn cancel(&self, req: Request<CancelRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        Ok(Response::new(Coordinator::cancel(self, req.into_inner().sweep_id).await?.into()))
    }
}

/// Keeps the gRPC health service current until `shutdown`: the services
/// `jagged.v1.WorkerService` and `jagged.v1.AdminService` serve while the
/// process runs (liveness); the server as a whole (service `""`) serves
/// while PostgreSQL answers (readiness), checked every 2 s.
async fn health(coordinator: Coordinator, reporter: tonic_health::server::HealthReporter, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use tonic_health::ServingStatus;
    for name in ["jagged.v1.WorkerService", "jagged.v1.AdminService"] {
        reporter.set_service_status(name, ServingStatus::Serving).await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut was = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                reporter.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
        }
        let ok = coordinator.ready().await;
        if was != Some(ok) {
            let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            if was.is_some() {
                tracing::warn!(ready = ok, postgres = %coordinator.store().address(), "readiness changed");
            }
            was = Some(ok);
        }
    }
}

/// Serves both services on `listener` (with gRPC health and server
/// reflection), and runs the reaper and the metrics refresh, until
/// `shutdown`.
pub async fn serve(
    coordinator: Coordinator,
    listener: tokio::net::TcpListener,
    auth: Auth,
    tls: Option<tonic::transport::Identity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use jagged_proto::auth::RequireToken;
    use tonic::service::interceptor::InterceptedService;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn(coordinator.clone().reaper(rx.clone()));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let checker = tokio::spawn(health(coordinator.clone(), health_reporter, rx.clone()));
    let gauges = tokio::spawn(coordinator.clone().gauges(Duration::from_secs(2), rx.clone()));
    // Server reflection (v1, and v1alpha for older clients), so tools such as
    // grpcurl work without the proto file.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jagged_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("the compiled descriptors are valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the compiled descriptors are valid");
    // TCP_NODELAY on every accepted connection: small responses (a lease, an
    // acknowledged commit) must not wait for Nagle's algorithm and the peer's
    // delayed ACK, tens of milliseconds each.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let max = coordinator.config().max_message;
    let workers = WorkerServiceServer::new(coordinator.clone()).max_decoding_message_size(max).max_encoding_message_size(max);
    let admin = AdminServiceServer::new(coordinator).max_decoding_message_size(max).max_encoding_message_size(max);
    let mut server = tonic::transport::Server::builder();
    if let Some(id) = tls {
        jagged_proto::transport::install_crypto();
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(id))?;
    }
    let result = server
        .add_service(InterceptedService::new(workers, RequireToken(auth.worker)))
        .add_service(InterceptedService::new(admin, RequireToken(auth.admin)))
        // The standard grpc.health.v1 service, without a token (probes and load
        // balancers carry none).
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = tx.send(true);
    let _ = reaper.await;
    let _ = checker.await;
    let _ = gauges.await;
    result
}
