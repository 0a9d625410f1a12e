//! The lite-engine: gRPC server on port 20001 of the pod.
//!
//! `ExecuteStep` answers at once and is idempotent per step id (a repeated id starts nothing).
//! In the background it dials the step's addon at `<addon host>:<container_port>` (all
//! containers share the pod's network namespace; the host is `localhost`), retrying until the
//! addon answers or the dial deadline passes, calls `Addon.ExecuteStep`, and reports the outcome
//! as the product's lite-engine does: `io.harness.task.service.TaskService/SendTaskStatus` at the
//! delegate endpoint, with the step's account id, task id and callback token, the gRPC metadata
//! `token` (DELEGATE_SERVICE_TOKEN) and `serviceId` (DELEGATE_SERVICE_ID); without a token
//! nothing is reported (the product's lite-engine refuses too). docs/protocol.md has the fields.
//!
//! Delegate endpoint, first found: the configured override (`--delegate-endpoint` or
//! `SGSIM_DELEGATE_ENDPOINT`), `DELEGATE_SERVICE_ENDPOINT`, the request's
//! `delegate_svc_endpoint`, `delegate-service:8080`. `unix:/path` endpoints are accepted too.
//!
//! Next to LiteEngine it serves the product's `LogProxy` ([`log_proxy`]): addons stream step logs
//! through it to the log service at HARNESS_LOG_SERVICE_ENDPOINT.
//!
//! A step whose `skip_condition` is literally `true` is reported SKIPPED without running (sgsim
//! evaluates no JEXL). Outputs of finished steps are passed to later steps as
//! `prev_step_outputs`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

pub mod log_proxy;

use crate::dial::{self, Target};
use crate::error::{EngineError, Result};
use crate::proto::addon::addon_client::AddonClient;
use crate::proto::engine::lite_engine_server::{LiteEngine, LiteEngineServer};
use crate::proto::engine::{
    EvaluateJexlRequest, EvaluateJexlResponse, ExecuteStepRequest, ExecuteStepResponse, GetImageEntrypointRequest,
    GetImageEntrypointResponse, PingRequest, PingResponse, StepOutput, UnitStep, UpdateStateRequest,
    UpdateStateResponse, unit_step,
};
use crate::proto::task_service::task_service_client::TaskServiceClient;
use crate::proto::task_service::{
    AccountId, DelegateCallbackToken, SendTaskStatusRequest, StepExecutionStatus, StepMapOutput, StepStatus, TaskId,
    TaskStatusData, step_status,
};

pub use crate::dial::DEFAULT_DELEGATE_ENDPOINT;
/// Where the product's addons keep scratch files.
pub const DEFAULT_TMP_DIR: &str = "/addon/tmp/";

/// Settings of the lite-engine.
#[derive(Debug, Clone)]
pub struct LiteEngineConfig {
    pub listen: SocketAddr,
    /// Host of the addons (`localhost` in a pod).
    pub addon_host: String,
    /// Forced delegate endpoint (see the module docs).
    pub delegate_override: Option<String>,
    /// `DELEGATE_SERVICE_ENDPOINT`.
    pub delegate_env: Option<String>,
    /// `DELEGATE_SERVICE_TOKEN`, sent as the `token` metadata of every status.
    pub delegate_token: Option<String>,
    /// `DELEGATE_SERVICE_ID`, sent as the `serviceId` metadata.
    pub service_id: Option<String>,
    /// How long to keep trying to reach a step's addon.
    pub addon_dial_timeout: Duration,
    /// How long to keep trying to deliver a status.
    pub report_timeout: Duration,
    /// The log service its `LogProxy` relays to, or why there is none (see
    /// [`log_proxy::client_from_env`]).
    pub log_service: std::result::Result<crate::log_service::HttpLogClient, String>,
}

impl LiteEngineConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            addon_host: "localhost".into(),
            delegate_override: None,
            delegate_env: None,
            delegate_token: None,
            service_id: None,
            addon_dial_timeout: Duration::from_secs(120),
            report_timeout: Duration::from_secs(60),
            log_service: log_proxy::client_from_env(|_| None),
        }
    }
}

struct Inner {
    config: LiteEngineConfig,
    started: Mutex<HashSet<String>>,
    outputs: Mutex<HashMap<String, StepOutput>>,
}

/// The LiteEngine gRPC service.
#[derive(Clone)]
pub struct LiteEngineService {
    inner: Arc<Inner>,
}

impl LiteEngineService {
    pub fn new(config: LiteEngineConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                started: Mutex::new(HashSet::new()),
                outputs: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// Serves the lite-engine until `shutdown` is cancelled.
pub async fn serve(config: LiteEngineConfig, shutdown: CancellationToken) -> Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| EngineError::Listen { addr: listen, source })?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let logs = log_proxy::LogProxyService::new(config.log_service.clone());
    tonic::transport::Server::builder()
        .add_service(LiteEngineServer::new(LiteEngineService::new(config)))
        .add_service(crate::proto::engine::log_proxy_server::LogProxyServer::new(logs))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(EngineError::Serve)
}

#[tonic::async_trait]
impl LiteEngine for LiteEngineService {
    async fn update_state(&self, _r: Request<UpdateStateRequest>) -> Result<Response<UpdateStateResponse>, Status> {
        Ok(Response::new(UpdateStateResponse {}))
    }

    async fn get_image_entrypoint(
        &self,
        _r: Request<GetImageEntrypointRequest>,
    ) -> Result<Response<GetImageEntrypointResponse>, Status> {
        Err(Status::unimplemented("sgsim lite-engine has no image registry access"))
    }

    async fn evaluate_jexl(&self, _r: Request<EvaluateJexlRequest>) -> Result<Response<EvaluateJexlResponse>, Status> {
        Err(Status::unimplemented("sgsim lite-engine does not evaluate JEXL"))
    }

    async fn ping(&self, _r: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }

    async fn execute_step(
        &self,
        request: Request<ExecuteStepRequest>,
    ) -> Result<Response<ExecuteStepResponse>, Status> {
        let req = request.into_inner();
        let step = req
            .step
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("ExecuteStep without a step"))?;
        if step.id.is_empty() {
            return Err(Status::invalid_argument("step id is empty"));
        }
        let fresh = self
            .inner
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step.id.clone());
        if fresh {
            println!("step {}: starting", step.id);
            let inner = self.inner.clone();
            tokio::spawn(async move { run_and_report(inner, req).await });
        }
        Ok(Response::new(ExecuteStepResponse {}))
    }
}

fn container_port(step: &UnitStep) -> u32 {
    if step.container_port != 0 {
        return step.container_port;
    }
    match &step.step {
        Some(unit_step::Step::Run(r)) => r.legacy_container_port,
        Some(unit_step::Step::Plugin(p)) => p.legacy_container_port,
        None => 0,
    }
}

async fn run_and_report(inner: Arc<Inner>, req: ExecuteStepRequest) {
    let started = Instant::now();
    let step = req.step.clone().unwrap_or_default();
    let mut status = StepStatus::default();
    if step.skip_condition.trim() == "true" {
        status.set_step_execution_status(StepExecutionStatus::Skipped);
    } else {
        execute_on_addon(&inner, &req, &step, &mut status).await;
    }
    let took = started.elapsed();
    status.total_time_taken = Some(crate::proto::task_service::Duration {
        seconds: took.as_secs() as i64,
        nanos: took.subsec_nanos() as i32,
    });
    println!("step {}: {}", step.id, status.step_execution_status().as_str_name());
    let endpoint = inner
        .config
        .delegate_override
        .clone()
        .or_else(|| inner.config.delegate_env.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| Some(req.delegate_svc_endpoint.clone()).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_DELEGATE_ENDPOINT.to_string());
    let request = SendTaskStatusRequest {
        account_id: Some(AccountId {
            id: step.account_id.clone(),
        }),
        task_id: Some(TaskId {
            id: step.task_id.clone(),
        }),
        callback_token: Some(DelegateCallbackToken {
            token: step.callback_token.clone(),
        }),
        task_status_data: Some(TaskStatusData {
            status_data: Some(crate::proto::task_service::task_status_data::StatusData::StepStatus(
                status,
            )),
        }),
    };
    let Some(token) = inner.config.delegate_token.clone().filter(|t| !t.is_empty()) else {
        println!(
            "step {}: cannot report status: DELEGATE_SERVICE_TOKEN token is not set",
            step.id
        );
        return;
    };
    let service_id = inner.config.service_id.clone().unwrap_or_default();
    if let Err(e) = send_status(&endpoint, request, &token, &service_id, inner.config.report_timeout).await {
        println!(
            "step {}: cannot report status to {endpoint}: {}",
            step.id,
            error_chain(&e)
        );
    }
}

async fn execute_on_addon(inner: &Inner, req: &ExecuteStepRequest, step: &UnitStep, report: &mut StepStatus) {
    let port = container_port(step);
    let fail = |report: &mut StepStatus, msg: String| {
        report.set_step_execution_status(StepExecutionStatus::Failure);
        report.error_message = msg;
    };
    let Ok(port) = u16::try_from(port) else {
        return fail(report, format!("invalid container port {port}"));
    };
    if port == 0 {
        return fail(report, "step has no container port".into());
    }
    let target = Target::Tcp {
        host: inner.config.addon_host.clone(),
        port,
    };
    let prev = inner.outputs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let addon_req = crate::proto::addon::ExecuteStepRequest {
        step: Some(step.clone()),
        tmp_file_path: if req.tmp_file_path.is_empty() {
            DEFAULT_TMP_DIR.to_string()
        } else {
            req.tmp_file_path.clone()
        },
        prev_step_outputs: prev,
    };
    let deadline = Instant::now() + inner.config.addon_dial_timeout;
    let mut last_err = String::new();
    let result = loop {
        if Instant::now() >= deadline {
            return fail(report, format!("cannot reach the addon at {target}: {last_err}"));
        }
        let channel = match dial::channel(&target).await {
            Ok(c) => c,
            Err(e) => {
                last_err = error_chain(&e);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut client = AddonClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        match client.execute_step(addon_req.clone()).await {
            // The connection broke (addon restarting): ExecuteStep is idempotent, ask again.
            Err(s) if s.code() == Code::Unavailable => {
                last_err = s.message().to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r => break r,
        }
    };
    match result {
        Ok(resp) => {
            let resp = resp.into_inner();
            report.set_step_execution_status(StepExecutionStatus::Success);
            report.num_retries = resp.num_retries;
            report.output = Some(step_status::Output::StepOutput(StepMapOutput {
                output: resp.output.clone(),
            }));
            inner
                .outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(step.id.clone(), StepOutput { output: resp.output });
        }
        Err(s) => {
            // The product's status enum has no timeout: the platform expires a step whose time
            // is up, whatever the lite-engine reports (sgsim's delegate does the same).
            let status = match s.code() {
                Code::Aborted | Code::Cancelled => StepExecutionStatus::Aborted,
                _ => StepExecutionStatus::Failure,
            };
            report.set_step_execution_status(status);
            report.error_message = s.message().to_string();
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Delivers `request` to the delegate task service at `endpoint` with the `token` and
/// `serviceId` metadata, retrying until `within` has passed.
async fn send_status(
    endpoint: &str,
    request: SendTaskStatusRequest,
    token: &str,
    service_id: &str,
    within: Duration,
) -> Result<()> {
    let target = Target::parse(endpoint)?;
    let deadline = Instant::now() + within;
    let mut delay = Duration::from_millis(100);
    let token = tonic::metadata::MetadataValue::try_from(token).map_err(|_| {
        EngineError::Report(Box::new(Status::invalid_argument(
            "DELEGATE_SERVICE_TOKEN is not ASCII",
        )))
    })?;
    let service_id = tonic::metadata::MetadataValue::try_from(service_id)
        .map_err(|_| EngineError::Report(Box::new(Status::invalid_argument("DELEGATE_SERVICE_ID is not ASCII"))))?;
    loop {
        let attempt = async {
            let channel = dial::channel(&target).await?;
            let mut call = Request::new(request.clone());
            call.metadata_mut().insert("token", token.clone());
            call.metadata_mut().insert("serviceid", service_id.clone());
            let resp = TaskServiceClient::new(channel)
                .send_task_status(call)
                .await
                .map_err(|s| EngineError::Report(Box::new(s)))?;
            if resp.into_inner().success {
                Ok(())
            } else {
                Err(EngineError::Report(Box::new(Status::unknown(format!(
                    "failed to update step status at delegate agent side: {endpoint}"
                )))))
            }
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() + delay >= deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
