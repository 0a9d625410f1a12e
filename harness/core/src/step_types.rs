//! The step types sgsim knows, one row each: the kind of container a step gets, its default
//! image, the environment variables the product manages for it, whether the product supplies
//! its image, the strict fields of its spec and the stand-in image the Docker tier runs for it.
//! Pipeline validation, pod rendering and planning read this table; add a step type here.

use crate::model::StepKind;

/// One step type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepType {
    /// The `type` as written in the pipeline.
    pub name: &'static str,
    /// The kind of container the step gets.
    pub kind: StepKind,
    /// Product-managed: the product supplies the image ([`StepType::default_image`], pulled
    /// through the harness image connector) and the step's privilege follows that image. False
    /// for the types whose image the user names (Run, Background, Plugin) and for steps without
    /// a container.
    pub product_managed: bool,
    /// The image used when the step does not name one (product-managed steps).
    pub default_image: Option<&'static str>,
    /// Variables the product always sets for the step (empty when the step's settings do not
    /// give them), besides the AWS connector's; non-empty only for AWS SAM and Serverless steps.
    pub managed_env: &'static [&'static str],
    /// The product derives the drone-git variables (`DRONE_REMOTE_URL`, ...) from the step's
    /// spec and Git connector instead of passing its settings as `PLUGIN_*`.
    pub clones_git: bool,
    /// Fields of the step's `spec` when they are checked strictly (unknown fields are errors);
    /// `None`: the spec is read tolerantly and its other fields become plugin settings.
    pub spec_fields: Option<&'static [&'static str]>,
    /// The stand-in image the Docker tier runs for the default image, when core knows one (the
    /// image catalog maps everything else).
    pub stand_in: Option<&'static str>,
}

impl StepType {
    /// Whether the step runs in a container of the pod.
    pub fn has_container(&self) -> bool {
        self.kind != StepKind::NoContainer
    }
}

/// Strict fields of a Run step's spec.
const RUN_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "shell",
    "command",
    "envVariables",
    "outputVariables",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "delegateSelectors",
];

/// Strict fields of a Background step's spec.
const BACKGROUND_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "shell",
    "command",
    "entrypoint",
    "envVariables",
    "portBindings",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "delegateSelectors",
];

/// Strict fields of a Plugin step's spec.
const PLUGIN_SPEC_FIELDS: &[&str] = &[
    "connectorRef",
    "image",
    "settings",
    "envVariables",
    "entrypoint",
    "privileged",
    "reports",
    "resources",
    "imagePullPolicy",
    "runAsUser",
    "uses",
    "delegateSelectors",
];

/// Variables the product sets for AwsSamBuild.
const SAM_BUILD_ENV: &[&str] = &[
    "PLUGIN_SAM_DIR",
    "PLUGIN_SAM_TEMPLATE_FILE_PATH",
    "PLUGIN_BUILD_COMMAND_OPTIONS",
];
/// Variables the product sets for AwsSamDeploy and AwsSamRollback.
const SAM_DEPLOY_ENV: &[&str] = &[
    "PLUGIN_SAM_DIR",
    "PLUGIN_SAM_TEMPLATE_FILE_PATH",
    "PLUGIN_DEPLOY_COMMAND_OPTIONS",
    "PLUGIN_STACK_NAME",
];
/// Variables the product sets for ServerlessAwsLambdaPackageV2.
const SERVERLESS_PACKAGE_ENV: &[&str] = &[
    "PLUGIN_SERVERLESS_DIR",
    "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
    "PLUGIN_SERVERLESS_STAGE",
    "PLUGIN_PACKAGE_COMMAND_OPTIONS",
];
/// Variables the product sets for ServerlessAwsLambdaDeployV2.
const SERVERLESS_DEPLOY_ENV: &[&str] = &[
    "PLUGIN_SERVERLESS_DIR",
    "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
    "PLUGIN_SERVERLESS_STAGE",
    "PLUGIN_DEPLOY_COMMAND_OPTIONS",
];
/// Variables the product sets for the Serverless prepare-rollback and rollback steps.
const SERVERLESS_ROLLBACK_ENV: &[&str] = &[
    "PLUGIN_SERVERLESS_DIR",
    "PLUGIN_SERVERLESS_YAML_CUSTOM_PATH",
    "PLUGIN_SERVERLESS_STAGE",
];

/// A row with the defaults of its kind (no managed variables, spec read tolerantly).
const fn row(name: &'static str, kind: StepKind, default_image: Option<&'static str>) -> StepType {
    StepType {
        name,
        kind,
        product_managed: default_image.is_some(),
        default_image,
        managed_env: &[],
        clones_git: false,
        spec_fields: None,
        stand_in: None,
    }
}

/// Every step type supported inside a containerized step group, in the order messages list them.
pub static ALL: &[StepType] = &[
    StepType {
        spec_fields: Some(RUN_SPEC_FIELDS),
        ..row("Run", StepKind::Run, None)
    },
    StepType {
        spec_fields: Some(BACKGROUND_SPEC_FIELDS),
        ..row("Background", StepKind::Background, None)
    },
    StepType {
        spec_fields: Some(PLUGIN_SPEC_FIELDS),
        ..row("Plugin", StepKind::Plugin, None)
    },
    StepType {
        clones_git: true,
        stand_in: Some("drone-git"),
        ..row("GitClone", StepKind::Plugin, Some("harness/drone-git:1.3.4-rootless"))
    },
    StepType {
        stand_in: Some("drone-git"),
        ..row(
            "DownloadManifests",
            StepKind::Plugin,
            Some("harness/drone-git:1.3.4-rootless"),
        )
    },
    row("S3Upload", StepKind::Plugin, Some("plugins/s3:1.2.2")),
    StepType {
        managed_env: SAM_BUILD_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "AwsSamBuild",
            StepKind::Plugin,
            Some("harnessdev/sam-build:1.82.0-latest"),
        )
    },
    StepType {
        managed_env: SAM_DEPLOY_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "AwsSamDeploy",
            StepKind::Plugin,
            Some("harnessdev/sam-deploy:1.82.0-latest"),
        )
    },
    StepType {
        managed_env: SAM_DEPLOY_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "AwsSamRollback",
            StepKind::Plugin,
            Some("harnessdev/sam-deploy:1.82.0-latest"),
        )
    },
    StepType {
        managed_env: SERVERLESS_ROLLBACK_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "ServerlessAwsLambdaPrepareRollbackV2",
            StepKind::Plugin,
            Some("harnessdev/serverless-preparerollback:3.30.1-1.0.0"),
        )
    },
    StepType {
        managed_env: SERVERLESS_PACKAGE_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "ServerlessAwsLambdaPackageV2",
            StepKind::Plugin,
            Some("harnessdev/serverless-package:3.30.1-1.0.0"),
        )
    },
    StepType {
        managed_env: SERVERLESS_DEPLOY_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "ServerlessAwsLambdaDeployV2",
            StepKind::Plugin,
            Some("harnessdev/serverless-deploy:3.30.1-1.0.0"),
        )
    },
    StepType {
        managed_env: SERVERLESS_ROLLBACK_ENV,
        stand_in: Some("aws-plugin"),
        ..row(
            "ServerlessAwsLambdaRollbackV2",
            StepKind::Plugin,
            Some("harnessdev/serverless-rollback:3.30.1-1.0.0"),
        )
    },
    row(
        "AwsCdkBootstrap",
        StepKind::Plugin,
        Some("harness/aws-cdk-plugin:1.0.0"),
    ),
    row("AwsCdkSynth", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    row("AwsCdkDiff", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    row("AwsCdkDeploy", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    row("AwsCdkDestroy", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    row("AwsCdkRollback", StepKind::Plugin, Some("harness/aws-cdk-plugin:1.0.0")),
    // Google Cloud Run (the product's generated step group names the image in each step).
    row(
        "GoogleCloudRunPrepareRollbackData",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    row(
        "GoogleCloudRunDeploy",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    row(
        "GoogleCloudRunTrafficShift",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    row(
        "GoogleCloudRunRollback",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    row(
        "GoogleCloudRunJob",
        StepKind::Plugin,
        Some("harness/google-cloud-run-plugin:1.0.9-linux-amd64"),
    ),
    // Azure Functions (CD deployment type AzureFunction): the product's Basic strategy generates
    // a containerized step group whose steps name their image. Default: the image of the
    // Harness sample harness-community/harnesscd-example-apps
    // `azure-function-deployment/harness-cd-pipelines/pipeline.yaml` @ 9e6c5f0152d1 (its
    // AzureFunctionRollback step); the product docs (developer-hub
    // `docs/continuous-delivery/deploy-srv-diff-platforms/azure/azure-function-tutorial.md`)
    // name the repository `harness/azure-function-plugin` on Docker Hub without a tag.
    // (harness-core's sources, where the product's own default would be, could not be fetched.)
    row(
        "AzureFunctionDeploy",
        StepKind::Plugin,
        Some("harnessdev/azure-function-plugin:1.0.15-linux-amd64"),
    ),
    row(
        "AzureFunctionRollback",
        StepKind::Plugin,
        Some("harnessdev/azure-function-plugin:1.0.15-linux-amd64"),
    ),
    // AWS Agent Core (deployment type AiAgent): the image of the product's Canary step group as
    // developer-hub `docs/continuous-delivery/ai-agent-deployments/aws-agent-core/canary-deployment.md`
    // @ ae7cf95ace4c gives it ("The step type is `RollbackAwsAgentCoreRevision` and the **Image**
    // is `harness/aws-agentcore-plugin:1.0.0-linux-amd64`", and the same image in its YAML for
    // the deploy and traffic-shift steps).
    row(
        "DeployAwsAgentCoreRevision",
        StepKind::Plugin,
        Some("harness/aws-agentcore-plugin:1.0.0-linux-amd64"),
    ),
    row(
        "ShiftAwsAgentCoreTraffic",
        StepKind::Plugin,
        Some("harness/aws-agentcore-plugin:1.0.0-linux-amd64"),
    ),
    row(
        "RollbackAwsAgentCoreRevision",
        StepKind::Plugin,
        Some("harness/aws-agentcore-plugin:1.0.0-linux-amd64"),
    ),
    // Other steps documented as running in a containerized step group: GitHub Actions, Slack
    // notifications, Database DevOps, supply-chain (SBOM/SLSA) and STO scanner steps. Their
    // default images are sgsim's best knowledge of the product's plugin images.
    row("Action", StepKind::Plugin, Some("plugins/github-actions:1.0.0")),
    row("SlackNotify", StepKind::Plugin, Some("plugins/slack:1.4.1")),
    row(
        "DBSchemaApply",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    row(
        "DBSchemaRollback",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    row(
        "LiquibaseCommand",
        StepKind::Plugin,
        Some("harness/drone-liquibase:latest"),
    ),
    row("FlywayCommand", StepKind::Plugin, Some("harness/drone-flyway:latest")),
    row("provenance", StepKind::Plugin, Some("harness/slsa-plugin:latest")),
    row("SlsaVerification", StepKind::Plugin, Some("harness/slsa-plugin:latest")),
    row(
        "SscaOrchestration",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    row("SscaEnforcement", StepKind::Plugin, Some("harness/ssca-plugin:latest")),
    row(
        "CdSscaOrchestration",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    row(
        "CdSscaEnforcement",
        StepKind::Plugin,
        Some("harness/ssca-plugin:latest"),
    ),
    row("CustomIngest", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    row("Wiz", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    row("AquaTrivy", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    row("Snyk", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    row("Grype", StepKind::Plugin, Some("harness/sto-plugin:latest")),
    row("HarnessApproval", StepKind::NoContainer, None),
    row("JiraApproval", StepKind::NoContainer, None),
    row("ServiceNowApproval", StepKind::NoContainer, None),
    row("CustomApproval", StepKind::NoContainer, None),
];

/// The row of a step type (`type` as written in the pipeline).
pub fn by_type(step_type: &str) -> Option<&'static StepType> {
    ALL.iter().find(|t| t.name == step_type)
}

/// The names of every step type, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|t| t.name)
}

/// Whether `image` is the default image of a product-managed step type (such an image is pulled
/// through the harness image connector, with its registry prefix).
pub fn is_product_image(image: &str) -> bool {
    ALL.iter().any(|t| t.product_managed && t.default_image == Some(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_type() {
        for (i, t) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.name != t.name), "{} twice", t.name);
        }
    }

    #[test]
    fn product_managed_steps_have_a_container_and_an_image() {
        for t in ALL {
            assert_eq!(t.product_managed, t.default_image.is_some(), "{}", t.name);
            assert!(!t.product_managed || t.has_container(), "{}", t.name);
            assert!(t.managed_env.is_empty() || t.product_managed, "{}", t.name);
        }
        assert_eq!(by_type("Run").map(|t| t.product_managed), Some(false));
        assert_eq!(
            by_type("GitClone").and_then(|t| t.default_image),
            Some("harness/drone-git:1.3.4-rootless")
        );
        assert!(by_type("Nope").is_none());
    }

    #[test]
    fn azure_function_and_aws_agent_core_steps_are_plugin_steps_with_the_product_images() {
        let azure = "harnessdev/azure-function-plugin:1.0.15-linux-amd64";
        let agent_core = "harness/aws-agentcore-plugin:1.0.0-linux-amd64";
        for (name, image) in [
            ("AzureFunctionDeploy", azure),
            ("AzureFunctionRollback", azure),
            ("DeployAwsAgentCoreRevision", agent_core),
            ("ShiftAwsAgentCoreTraffic", agent_core),
            ("RollbackAwsAgentCoreRevision", agent_core),
        ] {
            let t = by_type(name).unwrap_or_else(|| panic!("{name} has no row"));
            assert_eq!((t.kind, t.default_image), (StepKind::Plugin, Some(image)), "{name}");
            // No core stand-in: the image catalog decides, and an image without one is refused.
            assert_eq!(t.stand_in, None, "{name}");
            assert!(is_product_image(image));
        }
    }
}
