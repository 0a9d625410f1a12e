//! `sgsim new aws-sam|serverless`: writes a scenario (scenario.yaml + pipeline.yaml) holding the
//! containerized step group the product adds automatically for an AWS SAM or a Serverless.com
//! (AWS Lambda) deployment, with the fixtures it needs (Kubernetes and AWS connectors, the
//! namespace, the AWS secret key as a Harness secret).

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::exit;

/// The deployment types `sgsim new` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NewKind {
    /// AWS SAM: DownloadManifests, a Docker-in-Docker Background step, AwsSamBuild, AwsSamDeploy.
    AwsSam,
    /// Serverless.com on AWS Lambda: DownloadManifests, ServerlessAwsLambdaPrepareRollbackV2,
    /// ServerlessAwsLambdaPackageV2, ServerlessAwsLambdaDeployV2.
    Serverless,
}

impl NewKind {
    /// The default directory name (`aws-sam`, `serverless`).
    pub fn dir_name(self) -> &'static str {
        match self {
            NewKind::AwsSam => "aws-sam",
            NewKind::Serverless => "serverless",
        }
    }
}

const NAMESPACE: &str = "harness-delegate-ng";

/// The step group's infrastructure (serviceAccountName only when given).
fn infra(service_account: Option<&str>) -> String {
    let mut s = format!(
        "                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: k8s
                      namespace: {NAMESPACE}
"
    );
    if let Some(sa) = service_account {
        s.push_str(&format!("                      serviceAccountName: {sa}\n"));
    }
    s
}

const DOWNLOAD_MANIFESTS: &str = "                    - step:
                        name: Download Manifests
                        identifier: DownloadManifests
                        type: DownloadManifests
                        timeout: 10m
                        spec: {}
";

/// The pipeline YAML of a generated scenario.
pub fn pipeline_yaml(kind: NewKind, name: &str, service_account: Option<&str>) -> String {
    let (deployment_type, group_name, group_id, steps, shared) = match kind {
        NewKind::AwsSam => (
            "AWS_SAM",
            "AWS SAM Step Group",
            "aws_sam_step_group",
            format!(
                "{DOWNLOAD_MANIFESTS}                    - step:
                        type: Background
                        name: dind
                        identifier: dind
                        spec:
                          connectorRef: account.harnessImage
                          image: docker:dind
                          shell: Sh
                          privileged: true
                    - step:
                        name: SAM Build
                        identifier: SamBuild
                        type: AwsSamBuild
                        timeout: 10m
                        spec:
                          connectorRef: account.harnessImage
                          image: harnessdev/sam-build:1.82.0-latest
                          buildCommandOptions:
                            - --use-container
                          envVariables:
                            DOCKER_HOST: unix:///var/run/docker.sock
                    - step:
                        name: SAM Deploy
                        identifier: SamDeploy
                        type: AwsSamDeploy
                        timeout: 10m
                        spec:
                          connectorRef: account.harnessImage
                          image: harnessdev/sam-deploy:1.82.0-latest
                          deployCommandOptions:
                            - --capabilities CAPABILITY_IAM
                            - --no-fail-on-empty-changeset
                          stackName: {name}
"
            ),
            "                  sharedPaths:
                    - /var/run
                    - /var/lib/docker
",
        ),
        NewKind::Serverless => (
            "ServerlessAwsLambda",
            "Serverless Step Group",
            "serverless_step_group",
            format!(
                "{DOWNLOAD_MANIFESTS}                    - step:
                        name: Serverless Aws Lambda Prepare Rollback V2
                        identifier: ServerlessAwsLambdaPrepareRollbackV2
                        type: ServerlessAwsLambdaPrepareRollbackV2
                        timeout: 10m
                        spec:
                          connectorRef: account.harnessImage
                          image: harnessdev/serverless-preparerollback:3.30.1-1.0.0
                    - step:
                        name: Serverless Aws Lambda Package V2
                        identifier: ServerlessAwsLambdaPackageV2
                        type: ServerlessAwsLambdaPackageV2
                        timeout: 10m
                        spec:
                          connectorRef: account.harnessImage
                          image: harnessdev/serverless-package:3.30.1-1.0.0
                          packageCommandOptions:
                            - --verbose
                    - step:
                        name: Serverless Aws Lambda Deploy V2
                        identifier: ServerlessAwsLambdaDeployV2
                        type: ServerlessAwsLambdaDeployV2
                        timeout: 10m
                        spec:
                          connectorRef: account.harnessImage
                          image: harnessdev/serverless-deploy:3.30.1-1.0.0
                          deployCommandOptions:
                            - --force
"
            ),
            "",
        ),
    };
    let ident = name.replace(['-', ' ', '.'], "_");
    format!(
        "pipeline:
  name: {name}
  identifier: {ident}
  projectIdentifier: sgsim
  orgIdentifier: default
  tags: {{}}
  stages:
    - stage:
        name: deploy
        identifier: deploy
        description: \"\"
        type: Deployment
        spec:
          deploymentType: {deployment_type}
          service:
            serviceRef: {ident}_service
          environment:
            environmentRef: dev
            deployToAll: false
            infrastructureDefinitions:
              - identifier: {ident}_infra
          execution:
            steps:
              - stepGroup:
                  name: {group_name}
                  identifier: {group_id}
                  steps:
{steps}{shared}{infra}        failureStrategies:
          - onFailure:
              errors:
                - AllErrors
              action:
                type: StageRollback
",
        infra = infra(service_account),
    )
}

/// The scenario.yaml of a generated scenario: with `service_account`, the AWS connector has no
/// keys (the step images fall back to the pod's service account); otherwise it has an access
/// key, a secret key (a Harness secret), a cross-account role and an external id.
pub fn scenario_yaml(kind: NewKind, name: &str, service_account: Option<&str>) -> String {
    let what = match kind {
        NewKind::AwsSam => "AWS SAM",
        NewKind::Serverless => "Serverless.com (AWS Lambda)",
    };
    let (auth, aws, secrets, sa) = match service_account {
        Some(sa) => (
            format!("the AWS connector has no keys, so the step images use the pod's service account `{sa}`"),
            "    - identifier: aws
      type: Aws
      region: us-east-1
"
            .to_string(),
            String::new(),
            format!("  serviceAccounts: [{sa}]\n"),
        ),
        None => (
            "the AWS connector's access key, secret key (a Harness secret, masked), cross-account role and external id reach the step images as PLUGIN_* variables".to_string(),
            "    - identifier: aws
      type: Aws
      accessKey: AKIASGSIMEXAMPLE0001
      secretKeyRef: aws_secret_key
      region: us-east-1
      crossAccountRoleArn: arn:aws:iam::123456789012:role/sgsim-deployer
      externalId: sgsim-external-id
"
            .to_string(),
            "  harnessSecrets:\n    aws_secret_key: sgsimSecretKeyDoNotPrint0123456789abcdef\n".to_string(),
            String::new(),
        ),
    };
    let ids: &[&str] = match kind {
        NewKind::AwsSam => &["DownloadManifests", "dind", "SamBuild", "SamDeploy"],
        NewKind::Serverless => &[
            "DownloadManifests",
            "ServerlessAwsLambdaPrepareRollbackV2",
            "ServerlessAwsLambdaPackageV2",
            "ServerlessAwsLambdaDeployV2",
        ],
    };
    let steps: String = ids
        .iter()
        .map(|id| match *id {
            "dind" => format!("    {id}: {{status: Success}}\n"),
            _ => format!("    {id}: {{status: Success, exitCode: 0}}\n"),
        })
        .collect();
    format!(
        "name: {name}
description: >-
  The containerized step group the product adds automatically for an {what} deployment
  (generated by `sgsim new`); {auth}.
pipeline: pipeline.yaml
seed: 1
fixtures:
  namespaces: [{NAMESPACE}]
  connectors:
    - identifier: k8s
      type: KubernetesCluster
    - identifier: account.harnessImage
      type: DockerRegistry
      url: https://index.docker.io/v2/
{aws}{sa}{secrets}expect:
  status: Success
  steps:
{steps}"
    )
}

/// Writes the scenario into `dir` (created when missing; existing files are never overwritten).
pub fn write_scenario(kind: NewKind, dir: &Path, service_account: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or(kind.dir_name())
        .to_string();
    let files = [
        (dir.join("scenario.yaml"), scenario_yaml(kind, &name, service_account)),
        (dir.join("pipeline.yaml"), pipeline_yaml(kind, &name, service_account)),
    ];
    for (p, _) in &files {
        if p.exists() {
            return Err(format!("{} exists; not overwriting it", p.display()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (p, text) in files {
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// `sgsim new`: writes the scenario and prints the files written; returns its directory (the
/// caller validates it) or the exit code.
pub fn cmd_new(kind: NewKind, output: Option<&Path>, service_account: Option<&str>) -> Result<PathBuf, i32> {
    let dir = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(kind.dir_name()));
    match write_scenario(kind, &dir, service_account) {
        Ok(written) => {
            for p in &written {
                println!("wrote {}", p.display());
            }
            Ok(dir)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(exit::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_variant_has_no_keys() {
        let s = scenario_yaml(NewKind::AwsSam, "x", Some("deployer"));
        assert!(!s.contains("accessKey"));
        assert!(s.contains("serviceAccounts: [deployer]"));
        assert!(pipeline_yaml(NewKind::AwsSam, "x", Some("deployer")).contains("serviceAccountName: deployer"));
        let k = scenario_yaml(NewKind::Serverless, "x", None);
        assert!(k.contains("secretKeyRef: aws_secret_key"));
        assert!(!pipeline_yaml(NewKind::Serverless, "x", None).contains("serviceAccountName"));
    }
}
