//! The product's fixed values that sgsim reproduces: the default account and image connector,
//! the feature flags sgsim knows, the product's own images and their version, ports, mounts and
//! step defaults. The lowest layer: every other module may read it, it reads none.

/// The feature flag gating ConfigMap and Secret volumes (from the product documentation).
pub const FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME: &str = "CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME";
/// Feature flags sgsim knows.
pub const KNOWN_FEATURE_FLAGS: &[&str] = &[FF_CONFIG_MAPS_AND_SECRETS_AS_VOLUME, FF_POD_SPEC_OVERLAY];
/// The product applies podSpecOverlay in full only with this flag (harness-core
/// `ContainerStepInitHelper.getK8DirectPodParams`: `FeatureName.CI_K8S_OVERLAY_YAML`); without it,
/// only the overlay's top-level `topologySpreadConstraints` (`K8sPodInitUtils.getTopologySpreadConstraintsList`).
pub const FF_POD_SPEC_OVERLAY: &str = "CI_K8S_OVERLAY_YAML";
/// What the product takes from podSpecOverlay without [`FF_POD_SPEC_OVERLAY`].
pub const OVERLAY_WITHOUT_FLAG: &str = "topologySpreadConstraints";

/// Default Harness account id.
pub const DEFAULT_ACCOUNT_ID: &str = "sgsimAccount";
/// Default harness image connector.
pub const DEFAULT_HARNESS_IMAGE_CONNECTOR: &str = "account.harnessImage";

/// Version of the product's addon and lite-engine images.
pub const HARNESS_IMAGE_VERSION: &str = "1.16.8";
/// setup-addon image (before any registry prefix).
pub const ADDON_IMAGE: &str = "harness/ci-addon:1.16.8";
/// lite-engine image (before any registry prefix).
pub const LITE_ENGINE_IMAGE: &str = "harness/ci-lite-engine:1.16.8";
/// lite-engine gRPC port.
pub const LITE_ENGINE_PORT: u16 = 20001;
/// First step-container port.
pub const FIRST_STEP_PORT: u16 = 20002;
/// Workspace mount.
pub const WORKSPACE: &str = "/harness";
/// Addon mount.
pub const ADDON_DIR: &str = "/addon";
/// The setup-addon init container's script, verbatim: harness-core's
/// `ContainerExecutionConstants.UNIX_SETUP_ADDON_ARGS` (run as `sh -c -- <script>`). Its commands
/// are joined by `;`, so a failing `mkdir` or `cp` does not fail the container: the exit status
/// is the last command's (the `split_tests` branch, 0 when that file is absent).
pub const SETUP_ADDON_SCRIPT: &str = "mkdir -p /addon/bin; mkdir -p /addon/tmp; chmod -R 776 /addon/tmp; if [ -e /usr/local/bin/ci-addon-linux-amd64 ];then cp /usr/local/bin/ci-addon-linux-amd64 /addon/bin/ci-addon;else cp /usr/local/bin/ci-addon-linux /addon/bin/ci-addon;fi; chmod +x /addon/bin/ci-addon; cp /usr/local/bin/tmate /addon/bin/tmate; chmod +x /addon/bin/tmate; cp /usr/local/bin/java-agent.jar /addon/bin/java-agent.jar; chmod +x /addon/bin/java-agent.jar; if [ -e /usr/local/bin/split_tests ];then cp /usr/local/bin/split_tests /addon/bin/split_tests; chmod +x /addon/bin/split_tests; export PATH=$PATH:/addon/bin; fi;";
/// Delegate service endpoint as the product sets it.
pub const DELEGATE_SERVICE_ENDPOINT: &str = "delegate-service:8080";
/// Delegate service id.
pub const DELEGATE_SERVICE_ID: &str = "delegate-grpc-service";
/// Default step CPU limit.
pub const DEFAULT_STEP_CPU: &str = "400m";
/// Default step memory limit.
pub const DEFAULT_STEP_MEMORY: &str = "500Mi";
/// Default step timeout when the step sets none (10 minutes).
pub const DEFAULT_STEP_TIMEOUT_SECS: u64 = 600;
