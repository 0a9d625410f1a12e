//! sgsim-engine: the in-pod half of sgsim's step execution and the delegate-side client.
//!
//! - [`addon`]: the `sgsim-addon` server (one per step container) that runs a step's command.
//! - [`lite_engine`]: the `sgsim-lite-engine` server (port 20001) that takes `ExecuteStep` from the
//!   delegate, drives the step's addon and reports the outcome to the delegate service.
//! - [`node_agent`]: the `sgsim-node-agent` tunnels (host → pod, pod → delegate).
//! - [`pwsh`]: `sgsim-pwsh`, the PowerShell stand-in of sgsim's images for pwsh container images.
//! - [`delegate`]: the host side: [`delegate::DelegateServer`] receives step statuses,
//!   [`delegate::LiteEngineClient`] starts steps.
//! - [`log_service`]: the log service the lite-engine streams step logs to (host side), its
//!   line format and the lite-engine's HTTP client of it.
//! - [`proto`]: generated protobuf / gRPC types.
//! - [`error`]: [`EngineError`], the crate's one error type, and its [`Result`] alias.

pub mod addon;
#[doc(hidden)]
pub mod cli;
pub mod delegate;
pub mod dial;
pub mod error;
pub mod lite_engine;
pub mod log_service;
pub mod node_agent;
pub mod pwsh;
pub mod relay;
#[cfg(test)]
mod wire_tests;

pub use error::{EngineError, Result};

/// Generated protobuf and gRPC code. Wire names follow the product (see `proto/*.proto`).
pub mod proto {
    #[allow(clippy::all, missing_docs)]
    mod generated {
        pub mod io {
            pub mod harness {
                pub mod product {
                    pub mod ci {
                        pub mod engine {
                            pub mod proto {
                                tonic::include_proto!("io.harness.product.ci.engine.proto");
                            }
                        }
                        pub mod addon {
                            pub mod proto {
                                tonic::include_proto!("io.harness.product.ci.addon.proto");
                            }
                        }
                    }
                }
            }
        }
        pub mod io_task {
            tonic::include_proto!("io.harness.task.service");
        }
    }

    /// `io.harness.product.ci.addon.proto`: Addon service.
    pub use generated::io::harness::product::ci::addon::proto as addon;
    /// `io.harness.product.ci.engine.proto`: LiteEngine service, UnitStep, RunStep, ...
    pub use generated::io::harness::product::ci::engine::proto as engine;
    /// `io.harness.task.service`: the delegate task service's `SendTaskStatus` (step status
    /// callback), as the product's lite-engine calls it.
    pub use generated::io_task as task_service;
}
