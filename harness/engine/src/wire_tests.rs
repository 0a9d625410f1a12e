//! Wire checks: messages encoded by hand with the product's field numbers decode into our types,
//! and the gRPC paths are the product's.

use prost::Message;
use prost::encoding::{bool as pbool, int32, int64, message, string, uint32};

use crate::proto::{addon, engine};

fn kv(tag: u32, k: &str, v: &str, buf: &mut Vec<u8>) {
    // map<string,string> entry: key = 1, value = 2
    let mut entry = Vec::new();
    string::encode(1, &k.to_string(), &mut entry);
    string::encode(2, &v.to_string(), &mut entry);
    prost::encoding::bytes::encode(tag, &entry, buf);
}

fn run_step_bytes() -> Vec<u8> {
    let mut ctx = Vec::new();
    int64::encode(2, &5, &mut ctx); // execution_timeout_secs
    let mut run = Vec::new();
    string::encode(1, &"echo hi".to_string(), &mut run); // command
    prost::encoding::bytes::encode(2, &ctx, &mut run); // context
    string::encode(3, &"OUT".to_string(), &mut run); // env_var_outputs
    kv(6, "K", "V", &mut run); // environment
    int32::encode(7, &1, &mut run); // shell_type BASH
    pbool::encode(8, &true, &mut run); // detach
    string::encode(9, &"ep".to_string(), &mut run); // entrypoint
    string::encode(10, &"img".to_string(), &mut run); // image
    run
}

fn unit_step_bytes() -> Vec<u8> {
    let mut u = Vec::new();
    string::encode(1, &"step1".to_string(), &mut u); // id
    string::encode(2, &"Step 1".to_string(), &mut u); // display_name
    prost::encoding::bytes::encode(3, &run_step_bytes(), &mut u); // run
    string::encode(7, &"cb".to_string(), &mut u); // callback_token
    string::encode(8, &"task".to_string(), &mut u); // task_id
    string::encode(11, &"skip".to_string(), &mut u); // skip_condition
    string::encode(12, &"log".to_string(), &mut u); // log_key
    string::encode(13, &"acct".to_string(), &mut u); // account_id
    uint32::encode(14, &20002, &mut u); // container_port
    u
}

#[test]
fn unit_step_field_numbers() {
    let u = engine::UnitStep::decode(&unit_step_bytes()[..]).unwrap();
    assert_eq!(u.id, "step1");
    assert_eq!(u.display_name, "Step 1");
    assert_eq!(u.callback_token, "cb");
    assert_eq!(u.task_id, "task");
    assert_eq!(u.skip_condition, "skip");
    assert_eq!(u.log_key, "log");
    assert_eq!(u.account_id, "acct");
    assert_eq!(u.container_port, 20002);
    let Some(engine::unit_step::Step::Run(r)) = u.step else {
        panic!("run step expected")
    };
    assert_eq!(r.command, "echo hi");
    assert_eq!(r.context.unwrap().execution_timeout_secs, 5);
    assert_eq!(r.env_var_outputs, ["OUT"]);
    assert_eq!(r.environment.get("K").map(String::as_str), Some("V"));
    assert_eq!(r.shell_type(), engine::ShellType::Bash);
    assert!(r.detach);
    assert_eq!(r.entrypoint, ["ep"]);
    assert_eq!(r.image, "img");
}

#[test]
fn plugin_step_field_numbers() {
    let mut p = Vec::new();
    string::encode(1, &"plugins/x".to_string(), &mut p); // image
    string::encode(4, &"run".to_string(), &mut p); // entrypoint
    kv(5, "PLUGIN_A", "1", &mut p); // environment
    string::encode(6, &"/a.json".to_string(), &mut p); // artifact_file_path
    string::encode(8, &"O".to_string(), &mut p); // env_var_outputs
    let mut u = Vec::new();
    prost::encoding::bytes::encode(9, &p, &mut u); // plugin
    let u = engine::UnitStep::decode(&u[..]).unwrap();
    let Some(engine::unit_step::Step::Plugin(p)) = u.step else {
        panic!("plugin step expected")
    };
    assert_eq!(p.image, "plugins/x");
    assert_eq!(p.entrypoint, ["run"]);
    assert_eq!(p.environment.get("PLUGIN_A").map(String::as_str), Some("1"));
    assert_eq!(p.artifact_file_path, "/a.json");
    assert_eq!(p.env_var_outputs, ["O"]);
}

#[test]
fn shell_type_numbers() {
    use engine::ShellType::*;
    assert_eq!([Sh, Bash, Powershell, Pwsh, Python].map(|s| s as i32), [0, 1, 2, 3, 4]);
}

#[test]
fn lite_engine_execute_step_request_numbers() {
    let mut b = Vec::new();
    string::encode(1, &"exec".to_string(), &mut b);
    prost::encoding::bytes::encode(2, &unit_step_bytes(), &mut b);
    string::encode(3, &"/addon/tmp/".to_string(), &mut b);
    string::encode(4, &"delegate-service:8080".to_string(), &mut b);
    string::encode(8, &"d1".to_string(), &mut b);
    let r = engine::ExecuteStepRequest::decode(&b[..]).unwrap();
    assert_eq!(r.execution_id, "exec");
    assert_eq!(r.step.unwrap().id, "step1");
    assert_eq!(r.tmp_file_path, "/addon/tmp/");
    assert_eq!(r.delegate_svc_endpoint, "delegate-service:8080");
    assert_eq!(r.delegate_id, "d1");
}

#[test]
fn addon_messages_numbers() {
    let mut prev = Vec::new();
    kv(2, "X", "1", &mut prev); // StepOutput.output = 2
    let mut prev_entry = Vec::new();
    string::encode(1, &"earlier".to_string(), &mut prev_entry);
    prost::encoding::bytes::encode(2, &prev, &mut prev_entry);
    let mut b = Vec::new();
    prost::encoding::bytes::encode(1, &unit_step_bytes(), &mut b); // step
    string::encode(2, &"/tmp/x".to_string(), &mut b); // tmpFilePath
    prost::encoding::bytes::encode(3, &prev_entry, &mut b); // prev_step_outputs
    let r = addon::ExecuteStepRequest::decode(&b[..]).unwrap();
    assert_eq!(r.step.unwrap().container_port, 20002);
    assert_eq!(r.tmp_file_path, "/tmp/x");
    assert_eq!(r.prev_step_outputs["earlier"].output["X"], "1");

    let resp = addon::ExecuteStepResponse {
        output: [("A".to_string(), "b".to_string())].into_iter().collect(),
        num_retries: 1,
        artifact: Some(engine::Artifact {}),
    };
    let bytes = resp.encode_to_vec();
    let mut expect = Vec::new();
    kv(1, "A", "b", &mut expect);
    int32::encode(2, &1, &mut expect);
    message::encode(3, &engine::Artifact {}, &mut expect);
    assert_eq!(bytes, expect);
}

#[test]
fn grpc_paths_are_the_products() {
    let engine_rs = include_str!(concat!(env!("OUT_DIR"), "/io.harness.product.ci.engine.proto.rs"));
    for rpc in [
        "UpdateState",
        "GetImageEntrypoint",
        "EvaluateJEXL",
        "Ping",
        "ExecuteStep",
    ] {
        let path = format!("\"/io.harness.product.ci.engine.proto.LiteEngine/{rpc}\"");
        assert!(engine_rs.contains(&path), "{path}");
    }
    let addon_rs = include_str!(concat!(env!("OUT_DIR"), "/io.harness.product.ci.addon.proto.rs"));
    for rpc in ["ExecuteStep", "SignalStop"] {
        let path = format!("\"/io.harness.product.ci.addon.proto.Addon/{rpc}\"");
        assert!(addon_rs.contains(&path), "{path}");
    }
    let task_rs = include_str!(concat!(env!("OUT_DIR"), "/io.harness.task.service.rs"));
    assert!(task_rs.contains("\"/io.harness.task.service.TaskService/SendTaskStatus\""));
}

#[test]
fn send_task_status_has_the_products_field_numbers() {
    use crate::proto::task_service::{SendTaskStatusRequest, StepExecutionStatus, step_status, task_status_data};
    let wrap = |tag: u32, inner: &[u8], buf: &mut Vec<u8>| prost::encoding::bytes::encode(tag, &inner.to_vec(), buf);
    let id = |v: &str| {
        let mut b = Vec::new();
        string::encode(1, &v.to_string(), &mut b);
        b
    };
    let mut took = Vec::new();
    int64::encode(1, &3, &mut took); // Duration.seconds
    int32::encode(2, &500, &mut took); // Duration.nanos
    let mut out = Vec::new();
    kv(1, "VERSION", "1.2", &mut out); // StepMapOutput.output
    let mut st = Vec::new();
    int32::encode(1, &2, &mut st); // num_retries
    wrap(2, &took, &mut st); // total_time_taken
    int32::encode(3, &1, &mut st); // step_execution_status FAILURE
    wrap(4, &out, &mut st); // step_output
    string::encode(5, &"exit status 2".to_string(), &mut st); // error_message
    let mut data = Vec::new();
    wrap(1, &st, &mut data); // TaskStatusData.step_status
    let mut req = Vec::new();
    wrap(1, &id("acct"), &mut req); // account_id
    wrap(2, &id("task-1"), &mut req); // task_id
    wrap(3, &id("cb-1"), &mut req); // callback_token
    wrap(4, &data, &mut req); // task_status_data
    let r = SendTaskStatusRequest::decode(&req[..]).unwrap();
    assert_eq!(r.account_id.unwrap().id, "acct");
    assert_eq!(r.task_id.unwrap().id, "task-1");
    assert_eq!(r.callback_token.unwrap().token, "cb-1");
    let Some(task_status_data::StatusData::StepStatus(s)) = r.task_status_data.unwrap().status_data else {
        panic!("no step status");
    };
    assert_eq!(s.num_retries, 2);
    assert_eq!(s.step_execution_status(), StepExecutionStatus::Failure);
    assert_eq!(s.error_message, "exit status 2");
    let d = s.total_time_taken.unwrap();
    assert_eq!((d.seconds, d.nanos), (3, 500));
    let Some(step_status::Output::StepOutput(o)) = s.output else {
        panic!("no output");
    };
    assert_eq!(o.output["VERSION"], "1.2");
    // The enum's numbers are the product's.
    let numbers = [
        (StepExecutionStatus::Success, 0),
        (StepExecutionStatus::Failure, 1),
        (StepExecutionStatus::Running, 2),
        (StepExecutionStatus::Queued, 3),
        (StepExecutionStatus::Skipped, 4),
        (StepExecutionStatus::Aborted, 5),
    ];
    for (v, n) in numbers {
        assert_eq!(v as i32, n, "{v:?}");
    }
}
