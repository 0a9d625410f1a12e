//! The engine's errors: [`EngineError`], the one error type of the crate's API, and its
//! [`Result`] alias; [`AgentError`], the node agent's tunnel errors (which also convert into
//! `io::Error` for connectors), converts into it. The pwsh stand-in's parse and script errors stay
//! inside [`crate::pwsh`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error defaults to [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Errors of the engine: the delegate-side API ([`crate::delegate`]), the in-pod servers
/// ([`crate::addon`], [`crate::lite_engine`]), dialling ([`crate::dial`]), the binaries' command
/// lines ([`crate::cli`]) and the reasons a step cannot be started by the addon.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // ---- delegate side ----
    #[error("cannot bind the delegate service socket {path}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the lite-engine")]
    Connect(#[source] tonic::transport::Error),
    #[error("lite-engine call {call} failed")]
    Rpc {
        call: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },
    #[error("no status for task {task_id} within {after:?}")]
    StatusTimeout { task_id: String, after: Duration },
    #[error("the delegate service stopped before task {task_id} reported")]
    StatusDropped { task_id: String },
    #[error("invalid step: {0}")]
    InvalidStep(String),

    // ---- in-pod servers (addon, lite-engine) ----
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    /// The delegate service refused a step status (the lite-engine's report).
    #[error("{}: {}", .0.code(), .0.message())]
    Report(Box<tonic::Status>),

    // ---- dialling ----
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: &'static str },
    #[error("cannot connect to {target}")]
    Dial {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),

    // ---- the addon: steps it cannot start (reported as the step's failure message) ----
    #[error("Unknown shell type: {0}")]
    UnknownShell(i32),
    #[error(
        "step {step}: no command and no entrypoint; running the default entrypoint of image {image:?} is not supported by sgsim"
    )]
    NoCommand { step: String, image: String },
    #[error(
        "step {step}: plugin without entrypoint; running the default entrypoint of image {image:?} is not supported by sgsim"
    )]
    PluginWithoutEntrypoint { step: String, image: String },
    #[error("step {step} has neither a run nor a plugin definition")]
    NoStepDefinition { step: String },
    #[error("cannot create output pipe: {0}")]
    OutputPipe(#[source] std::io::Error),
    /// A step's program cannot be started (worded like the product, a Go program).
    #[error("{}", spawn_message(program, source))]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    // ---- command lines of the binaries ----
    #[error("accepted flags: {accepted}")]
    Help { accepted: String },
    #[error("flag --{flag} needs a value")]
    MissingValue { flag: String },
    #[error("--{flag} is required")]
    MissingFlag { flag: &'static str },
    #[error("invalid value {value:?} for --{flag}")]
    InvalidValue { value: String, flag: String },
}

/// Error text in the style of the product (a Go program) for a program that cannot start.
fn spawn_message(program: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && !program.contains('/') {
        format!("exec: \"{program}\": executable file not found in $PATH")
    } else if e.kind() == std::io::ErrorKind::NotFound {
        format!("fork/exec {program}: no such file or directory")
    } else {
        format!("fork/exec {program}: {e}")
    }
}

/// Errors of the node agent (`crate::node_agent`): its listeners and the host → pod tunnel.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on unix socket {path}")]
    BindUnix {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {addr}")]
    BindTcp {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("accept failed")]
    Accept(#[source] io::Error),
    #[error("tunnel to {target} refused by the node agent: {message}")]
    Refused { target: SocketAddr, message: String },
    #[error("node agent at {path} unreachable")]
    Agent {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<AgentError> for io::Error {
    fn from(e: AgentError) -> Self {
        let kind = match &e {
            AgentError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            AgentError::Agent { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
