//! sgsim's delegate (`sgsim_engine::delegate`) against a lite-engine double built only from
//! docs/protocol.md: ExecuteStep goes out as documented, and every documented status comes back
//! as the step outcome the delegate should make of it.

use std::collections::BTreeMap;
use std::time::Duration;

use sgsim_contract::{Double, DoubleConfig};
use sgsim_engine::delegate::{
    DELEGATE_SERVICE_ID, DelegateServer, LiteEngineClient, ServeGuard, ShellType, Status, StepCommand, StepSpec,
};

struct Rig {
    _dir: tempfile::TempDir,
    delegate: DelegateServer,
    _serve: ServeGuard,
    double: Double,
    client: LiteEngineClient,
}

async fn rig(token: Option<&str>, service_id: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("delegate.sock");
    let delegate = DelegateServer::new();
    let serve = delegate.serve_unix(&sock).await.unwrap();
    let double = Double::start(DoubleConfig {
        delegate_socket: sock,
        token: token.unwrap_or(delegate.token()).to_string(),
        service_id: service_id.to_string(),
    })
    .await
    .unwrap();
    let client = LiteEngineClient::connect_tcp(double.addr)
        .await
        .unwrap()
        .with_default_status_wait(Duration::from_secs(5));
    client.ping().await.unwrap();
    Rig {
        _dir: dir,
        delegate,
        _serve: serve,
        double,
        client,
    }
}

fn step(id: &str, command: &str, timeout: Option<Duration>, detach: bool) -> StepSpec {
    StepSpec {
        id: id.into(),
        display_name: format!("Step {id}"),
        container_port: 20002,
        kind: StepCommand::Run {
            command: command.into(),
            shell: ShellType::Sh,
            env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
            image: "alpine:3.19".into(),
            entrypoint: Vec::new(),
            detach,
            output_vars: vec!["VERSION".into()],
            reports: Vec::new(),
        },
        timeout,
        task_id: format!("task-{id}"),
        callback_token: format!("cb-{id}"),
        log_key: format!("log-{id}"),
        account_id: "acct-1".into(),
    }
}

#[tokio::test]
async fn execute_step_goes_out_as_documented() {
    let r = rig(None, DELEGATE_SERVICE_ID).await;
    let st = r
        .client
        .execute_step(
            &r.delegate,
            step("build", "exit 0", Some(Duration::from_secs(90)), false),
        )
        .await
        .unwrap();
    assert_eq!(st.status, Status::Success);
    let req = r.double.journal(|j| j.requests[0].clone());
    let unit = req.step.unwrap();
    assert_eq!(unit.id, "build");
    assert_eq!(unit.display_name, "Step build");
    assert_eq!(unit.task_id, "task-build");
    assert_eq!(unit.callback_token, "cb-build");
    assert_eq!(unit.log_key, "log-build");
    assert_eq!(unit.account_id, "acct-1");
    assert_eq!(unit.container_port, 20002);
    let Some(sgsim_contract::wire::engine::unit_step::Step::Run(run)) = unit.step else {
        panic!("not a run step");
    };
    assert_eq!(run.command, "exit 0");
    assert_eq!(run.context.unwrap().execution_timeout_secs, 90);
    assert_eq!(run.environment["GREETING"], "hi");
    assert_eq!(run.env_var_outputs, ["VERSION"]);
    assert_eq!(run.image, "alpine:3.19");
    assert!(!run.detach);
    assert_eq!(r.double.answer("build", Duration::from_secs(1)).await, Some(Ok(true)));
}

#[tokio::test]
async fn documented_statuses_become_step_outcomes() {
    let r = rig(None, DELEGATE_SERVICE_ID).await;
    let ok = r
        .client
        .execute_step(&r.delegate, step("ok", "out VERSION=1.4.2; exit 0", None, false))
        .await
        .unwrap();
    assert_eq!(ok.status, Status::Success);
    assert_eq!(ok.exit_code, Some(0), "a step run to success exited 0");
    assert_eq!(ok.outputs["VERSION"], "1.4.2");

    let bg = r
        .client
        .execute_step(&r.delegate, step("bg", "exit 0", None, true))
        .await
        .unwrap();
    assert_eq!(
        (bg.status, bg.exit_code),
        (Status::Success, None),
        "a detached step has no exit yet"
    );

    let failed = r
        .client
        .execute_step(&r.delegate, step("failed", "exit 3", None, false))
        .await
        .unwrap();
    assert_eq!(failed.status, Status::Failure);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.error.as_deref(), Some("exit status 3"));

    let aborted = r
        .client
        .execute_step(&r.delegate, step("aborted", "abort", None, false))
        .await
        .unwrap();
    assert_eq!(aborted.status, Status::Aborted);

    // The status enum has no timeout: a failure reported once the step's timeout has passed is
    // an expired step.
    let expired = r
        .client
        .execute_step(
            &r.delegate,
            step("slow", "sleep 1200; exit 137", Some(Duration::from_secs(1)), false),
        )
        .await
        .unwrap();
    assert_eq!(expired.status, Status::Timeout);
    assert_eq!(expired.exit_code, None);
}

#[tokio::test]
async fn a_status_with_a_wrong_token_or_service_is_refused() {
    for (token, service) in [(Some("forged"), DELEGATE_SERVICE_ID), (None, "some-other-service")] {
        let r = rig(token, service).await;
        let res = r
            .client
            .execute_step(&r.delegate, step("sneaky", "exit 0", None, false))
            .await;
        assert!(
            res.is_err(),
            "{token:?}/{service}: the delegate took the status: {res:?}"
        );
        let answer = r.double.answer("sneaky", Duration::from_secs(1)).await;
        assert!(
            matches!(answer, Some(Err((tonic::Code::Unauthenticated, _)))),
            "{token:?}/{service}: {answer:?}"
        );
    }
}
