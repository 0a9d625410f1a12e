//! A lite-engine double built only from the documented protocol.
//!
//! `build.rs` compiles the ```` ```proto ```` blocks of docs/protocol.md, and this crate uses
//! nothing of sgsim's engine: the double serves `LiteEngine` as the page describes it and reports
//! every step to the delegate with `TaskService/SendTaskStatus` and the `token` / `serviceid`
//! metadata. The test in `tests/` drives sgsim's delegate against it.
//!
//! The double does not run commands. A Run step's `command` says what to report, as `;`-separated
//! words: `sleep <ms>` waits first, `exit <n>` reports FAILURE with `exit status <n>` (0:
//! SUCCESS), `abort` reports ABORTED, `out <NAME>=<value>` adds an output variable.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

/// The code generated from docs/protocol.md.
#[allow(clippy::all, missing_docs)]
pub mod wire {
    /// `io.harness.product.ci.engine.proto`
    pub mod engine {
        tonic::include_proto!("io.harness.product.ci.engine.proto");
    }
    /// `io.harness.task.service`
    pub mod task {
        tonic::include_proto!("io.harness.task.service");
    }
}

use wire::engine::lite_engine_server::{LiteEngine, LiteEngineServer};
use wire::engine::{ExecuteStepRequest, ExecuteStepResponse, PingRequest, PingResponse, unit_step};
use wire::task::task_service_client::TaskServiceClient;
use wire::task::{
    AccountId, DelegateCallbackToken, SendTaskStatusRequest, StepExecutionStatus, StepMapOutput, StepStatus, TaskId,
    TaskStatusData, step_status, task_status_data,
};

/// How the double reaches the delegate and what it tells it.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// The delegate's unix socket (the pod's DELEGATE_SERVICE_ENDPOINT, relayed).
    pub delegate_socket: PathBuf,
    /// DELEGATE_SERVICE_TOKEN.
    pub token: String,
    /// DELEGATE_SERVICE_ID.
    pub service_id: String,
}

/// What the double saw and what the delegate answered.
#[derive(Debug, Default)]
pub struct Journal {
    /// Every ExecuteStep request, in arrival order.
    pub requests: Vec<ExecuteStepRequest>,
    /// Per step id, the delegate's answer to its SendTaskStatus: `success` or the gRPC error.
    pub answers: HashMap<String, Result<bool, (tonic::Code, String)>>,
}

#[derive(Clone)]
struct Service {
    config: DoubleConfig,
    started: Arc<Mutex<HashSet<String>>>,
    journal: Arc<Mutex<Journal>>,
}

/// A running double; dropping it stops the server.
pub struct Double {
    /// Where it serves LiteEngine.
    pub addr: SocketAddr,
    journal: Arc<Mutex<Journal>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Double {
    /// Serves LiteEngine on a free loopback port.
    pub async fn start(config: DoubleConfig) -> std::io::Result<Double> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let journal = Arc::new(Mutex::new(Journal::default()));
        let svc = Service {
            config,
            started: Arc::default(),
            journal: journal.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(LiteEngineServer::new(svc))
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Double {
            addr,
            journal,
            _stop: tx,
        })
    }

    /// Runs `f` on the journal.
    pub fn journal<T>(&self, f: impl FnOnce(&Journal) -> T) -> T {
        f(&self.journal.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits up to `within` for the delegate's answer to step `id`'s status.
    pub async fn answer(&self, id: &str, within: Duration) -> Option<Result<bool, (tonic::Code, String)>> {
        let end = Instant::now() + within;
        loop {
            if let Some(a) = self.journal(|j| j.answers.get(id).cloned()) {
                return Some(a);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tonic::async_trait]
impl LiteEngine for Service {
    async fn ping(&self, _r: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }

    async fn execute_step(&self, r: Request<ExecuteStepRequest>) -> Result<Response<ExecuteStepResponse>, Status> {
        let req = r.into_inner();
        let Some(step) = req.step.clone() else {
            return Err(Status::invalid_argument("no step"));
        };
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .push(req);
        let fresh = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step.id.clone());
        if fresh {
            let me = self.clone();
            tokio::spawn(async move { me.run(step).await });
        }
        Ok(Response::new(ExecuteStepResponse {}))
    }
}

impl Service {
    async fn run(&self, step: wire::engine::UnitStep) {
        let started = Instant::now();
        let command = match &step.step {
            Some(unit_step::Step::Run(r)) => r.command.clone(),
            _ => String::new(),
        };
        let mut status = StepExecutionStatus::Success;
        let mut error = String::new();
        let mut outputs = HashMap::new();
        for word in command.split(';').map(str::trim) {
            if let Some(ms) = word.strip_prefix("sleep ") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            } else if let Some(n) = word.strip_prefix("exit ") {
                if n != "0" {
                    status = StepExecutionStatus::Failure;
                    error = format!("exit status {n}");
                }
            } else if word == "abort" {
                status = StepExecutionStatus::Aborted;
                error = "aborted".into();
            } else if let Some((k, v)) = word.strip_prefix("out ").and_then(|kv| kv.split_once('=')) {
                outputs.insert(k.to_string(), v.to_string());
            }
        }
        let took = started.elapsed();
        let report = SendTaskStatusRequest {
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
                status_data: Some(task_status_data::StatusData::StepStatus(StepStatus {
                    num_retries: 1,
                    total_time_taken: Some(wire::task::Duration {
                        seconds: took.as_secs() as i64,
                        nanos: took.subsec_nanos() as i32,
                    }),
                    step_execution_status: status as i32,
                    output: Some(step_status::Output::StepOutput(StepMapOutput { output: outputs })),
                    error_message: error,
                })),
            }),
        };
        let answer = self.send(report).await;
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answers
            .insert(step.id, answer);
    }

    async fn send(&self, report: SendTaskStatusRequest) -> Result<bool, (tonic::Code, String)> {
        let path = self.config.delegate_socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://delegate-service")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
            .map_err(|e| (tonic::Code::Unavailable, e.to_string()))?;
        let mut call = Request::new(report);
        let md = call.metadata_mut();
        md.insert(
            "token",
            self.config
                .token
                .parse()
                .map_err(|_| (tonic::Code::Internal, "token".into()))?,
        );
        md.insert(
            "serviceid",
            self.config
                .service_id
                .parse()
                .map_err(|_| (tonic::Code::Internal, "serviceid".into()))?,
        );
        TaskServiceClient::new(channel)
            .send_task_status(call)
            .await
            .map(|r| r.into_inner().success)
            .map_err(|s| (s.code(), s.message().to_string()))
    }
}
