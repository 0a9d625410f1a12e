//! Compiles our own .proto files with protox (pure Rust, no system `protoc`) and hands the
//! resulting FileDescriptorSet to tonic-prost-build.

use std::error::Error;

const PROTOS: &[&str] = &[
    "proto/harness_engine.proto",
    "proto/harness_addon.proto",
    "proto/harness_task_service.proto",
    "proto/harness_logproxy.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
