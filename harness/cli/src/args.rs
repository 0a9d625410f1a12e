//! The command line's shape (clap): subcommands, their flags and the value enums.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sgsim_core::LoadOptions;

use crate::{images_cmd, new_cmd, output, review};

pub(crate) const EXIT_CODES: &str = "Exit codes:
  0    success: the outcome is the expected one and goldens match
  1    invalid input (YAML, unknown field, missing step group, unreadable file)
  2    wrong usage
  3    the outcome or a golden file differs from the expected one
  4    infrastructure failure (Docker, images, cluster)
  130  interrupted (everything the run started is removed)
  141  standard output was closed (`sgsim run ... | head`); everything the run started is removed";

/// sgsim: run Harness containerized step groups on a throwaway Kubernetes cluster and compare
/// what happens with golden output.
#[derive(Debug, Parser)]
#[command(name = "sgsim", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// When to color the output: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: output::ColorChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `render`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// When `sgsim run` pulls a step's image from its real registry into this machine's Docker daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PullArg {
    /// Pull the images the daemon does not hold yet (then the real image runs).
    #[default]
    Missing,
    /// Pull every image again (moving tags); a failed pull ends the run.
    Always,
    /// Never pull: the images the daemon holds, else stand-ins.
    Never,
}

impl From<PullArg> for sgsim_cluster::images::PullMode {
    fn from(p: PullArg) -> Self {
        match p {
            PullArg::Missing => Self::Missing,
            PullArg::Always => Self::Always,
            PullArg::Never => Self::Never,
        }
    }
}

/// Where pods run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Real containers on kind-style Docker-in-Docker nodes (the default).
    #[default]
    Docker,
    /// No containers (kwok-like): the same API server, scheduler and runner with fake kubelets
    /// and a fake lite-engine driven by the scenario's `fake:` data. Compares pod.yaml,
    /// initialize.log, result.yaml and the step logs the data gives; never writes goldens.
    Fake,
    /// An existing cluster reached through a kubeconfig (`--kubeconfig`, `--context`): a
    /// namespace per trial, sgsim's delegate relayed into the cluster; compared with the goldens
    /// (docs/kube-backend.md), never writes them.
    Kube,
}

/// The cluster of `--backend kube`.
#[derive(Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// With `--backend kube`: the kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "SGSIM_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// With `--backend kube`: the kubeconfig context (default: its current context).
    #[arg(long, env = "SGSIM_KUBE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

impl KubeArgs {
    /// The target of the kube runtime.
    pub fn target(&self) -> sgsim_cluster::kube_runtime::KubeTarget {
        sgsim_cluster::kube_runtime::KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// Which step group of the input runs, and under which identifier.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Select {
    /// The step group to use (identifier, or stage.group), when the file has several.
    #[arg(long)]
    pub step_group: Option<String>,
    /// Run a step group template under this identifier: the one it has in the customer's pipeline,
    /// so its `<+execution.steps.<identifier>...>` expressions resolve.
    #[arg(long)]
    pub identifier: Option<String>,
}

impl Select {
    /// The core load options for this selection.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            step_group: self.step_group.clone(),
            identifier: self.identifier.clone(),
            ..Default::default()
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate scenarios or pipeline YAML files; every error as file:line:col.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Scenario directories, scenario.yaml files or bare pipeline YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
    },
    /// Print the Pod the product would create for the step group.
    #[command(after_help = EXIT_CODES)]
    Render {
        /// A scenario directory, scenario.yaml or a bare pipeline YAML.
        file: PathBuf,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
        output: Format,
        /// Also print the Secrets the product creates before the pod (image pull Secrets and the
        /// lite-engine's `<pod>-secret`, with placeholder credentials), so that the output can be
        /// applied to a cluster as is (YAML: one document each; JSON: a `v1` List).
        #[arg(long)]
        with_secrets: bool,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
    },
    /// Run the step group on a throwaway cluster: live Initialize log, step logs, summary, and a
    /// diff against golden/<scenario>/ when it exists.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// A scenario directory, scenario.yaml or a bare pipeline YAML.
        file: PathBuf,
        /// Compare with this golden directory (default: golden/<scenario dir name> when it exists).
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Keep the pod after the run (the cluster still goes away at exit).
        #[arg(long)]
        keep_pod: bool,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
        /// Where pods run (`--backend` is the same flag).
        #[arg(long, visible_alias = "backend", value_enum, default_value = "docker")]
        runtime: RuntimeKind,
        /// The cluster of `--backend kube`.
        #[command(flatten)]
        kube: KubeArgs,
        /// Also write a static HTML report of the run (DIR/index.html).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Pull step images from their registries into this machine's Docker daemon first, so the
        /// real image runs: `missing` (images it does not hold), `always` or `never`. An image
        /// that is neither held nor pulled runs as a stand-in, named as such.
        #[arg(long, value_enum, env = "SGSIM_PULL", default_value = "missing")]
        pull: PullArg,
    },
    /// Turn a customer's pipeline into a conformance scenario: write scenarios/NAME/ (the pipeline
    /// verbatim, every inferred fixture with a comment), run it on real containers, write
    /// golden/NAME/ from that run; with --log, name the first line where the customer's Initialize
    /// log and sgsim's part (exit 3).
    #[command(after_help = EXIT_CODES)]
    Repro {
        /// The customer's pipeline YAML (or step group template).
        pipeline: PathBuf,
        /// Which step group, and under which identifier.
        #[command(flatten)]
        select: Select,
        /// Runtime input values: a YAML mapping of field paths to values.
        #[arg(long, value_name = "FILE")]
        inputs: Option<PathBuf>,
        /// The customer's Initialize log, as copied from the product's UI (timestamps and all).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// The scenario's name (default: repro-<file name>).
        #[arg(long)]
        name: Option<String>,
        /// The directory holding scenarios/ and golden/ (default: this repository).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Pull step images from their registries first (see `sgsim run --pull`).
        #[arg(long, value_enum, env = "SGSIM_PULL", default_value = "missing")]
        pull: PullArg,
    },
    /// Run the conformance trials (the same as `cargo test --test conformance`).
    #[command(after_help = EXIT_CODES)]
    Test {
        /// Run only trials whose name contains this.
        filter: Option<String>,
        /// The filter must match the trial name exactly.
        #[arg(long)]
        exact: bool,
        /// List the trials instead of running them.
        #[arg(long)]
        list: bool,
        /// How many trials run at once.
        #[arg(long)]
        test_threads: Option<usize>,
        /// Where pods run (`fake` skips the scenarios whose `fake.skip` says why they need
        /// containers; `kube` those that need the embedded cluster). `--backend` is the same flag.
        #[arg(long, visible_alias = "backend", value_enum, default_value = "docker")]
        runtime: RuntimeKind,
        /// The cluster of `--backend kube`.
        #[command(flatten)]
        kube: KubeArgs,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write a static HTML report (DIR/index.html): per scenario the outcome, golden
        /// diffs, events timeline, step logs, pod and images.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Build the HTML report page (DIR/index.html) again from the trials DIR holds: after
    /// `cargo nextest run` or sharded runs with SGSIM_REPORT=DIR, whose processes each add theirs.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// The report directory.
        dir: PathBuf,
        /// The page's title.
        #[arg(long, default_value = "sgsim conformance")]
        title: String,
    },
    /// Accept pending golden files (`*.new`, written when a trial's output differed).
    Accept {
        /// Only scenarios whose name contains this.
        filter: Option<String>,
    },
    /// Review the pending golden files one by one: the colored diff, then accept (a), reject (r),
    /// skip (s) or quit (q), as `cargo insta review`; reports golden directories no scenario
    /// produces any more.
    #[command(after_help = EXIT_CODES)]
    Review {
        /// Only scenarios whose name contains this.
        filter: Option<String>,
        /// Golden directories without a scenario: ignore, warn (default), reject (exit 3) or delete.
        #[arg(long, value_enum, default_value = "warn")]
        unreferenced: review::Unreferenced,
    },
    /// Write a scenario with the step group the product adds for an AWS SAM or Serverless.com
    /// deployment (and its fixtures), then validate it.
    #[command(after_help = EXIT_CODES)]
    New {
        /// The deployment type.
        #[arg(value_enum)]
        kind: new_cmd::NewKind,
        /// The scenario directory to write (default: ./aws-sam or ./serverless).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Give the AWS connector no keys and run the pod as this service account.
        #[arg(long)]
        service_account: Option<String>,
    },
    /// Show, build and prune the stand-in images and the vendor names they stand in for.
    Images {
        /// What to do.
        #[command(subcommand)]
        action: images_cmd::ImagesAction,
    },
    /// Check that this machine can run sgsim and its tests (Docker, privileged support or its
    /// fallback, images, disk space, kubectl, the Python client) and say what to do about each
    /// problem.
    #[command(after_help = EXIT_CODES)]
    Doctor,
    /// Manage the embedded cluster.
    Cluster {
        /// What to do with it.
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// `sgsim cluster` actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Start the embedded cluster in the foreground and write a kubeconfig (Ctrl-C stops it and
    /// removes everything).
    Up {
        /// Where to write the cluster's own kubeconfig (YAML, mode 0600).
        #[arg(long, default_value = "sgsim.kubeconfig")]
        kubeconfig: PathBuf,
        /// Also merge the cluster's context into your kubeconfig ($KUBECONFIG, else
        /// ~/.kube/config) and make it current, as kind does; it is removed again on exit.
        #[arg(long)]
        merge: bool,
        /// Name of the cluster, user and context in the kubeconfigs.
        #[arg(long, default_value = "sgsim")]
        name: String,
        /// Start only the API server (no node, scheduler or kubelet: nothing runs).
        #[arg(long)]
        api_only: bool,
    },
}
