//! sgsim-core: the pure part of sgsim.
//!
//! - [`scenario::load`]: read a scenario.yaml (or a bare pipeline YAML) and its pipeline, validate
//!   them (every error as `path:line:col: message`, all at once), resolve `<+input>` and secrets.
//! - [`render::render_pod`] and [`render::plan`]: the pod the product would create, and the steps
//!   the delegate runs in it.
//! - [`step_types`]: one row per step type (kind, default image, managed variables, ...), read by
//!   validation, rendering and planning; [`defaults`]: the product's fixed values; [`naming`]:
//!   how the product names pods and containers.
//! - [`normalize`]: stable placeholders for goldens, secret masking.
//! - [`golden`]: compare expected and actual text, render unified diffs.
//!
//! No IO and no async: callers read files and hand their text in.

pub mod base64;
pub mod defaults;
pub mod diag;
pub mod duration;
pub mod golden;
pub mod initialize;
pub mod kubeconfig;
pub mod model;
pub mod naming;
pub mod normalize;
pub mod overlay;
pub mod pipeline;
pub mod quantity;
pub mod record;
pub mod render;
pub mod rng;
pub mod scenario;
pub mod step_types;
pub mod verdict;
mod walk;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use render::{ExecutionPlan, PlanNode, PlannedStep, RunIds, plan, render_pod};
pub use scenario::{
    LoadOptions, Scenario, ScenarioError, SourceError, SourceLoader, load, load_with_options, no_files,
};
