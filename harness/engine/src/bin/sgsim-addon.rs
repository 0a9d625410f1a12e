//! `sgsim-addon --port N`: runs the steps of one step container (see `sgsim_engine::addon`).
//! Its stdout carries the step's output only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use sgsim_engine::EngineError;
use sgsim_engine::addon::{AddonConfig, serve};
use sgsim_engine::cli::{Flags, terminated};
use tokio_util::sync::CancellationToken;

fn config() -> sgsim_engine::Result<AddonConfig> {
    let flags = Flags::parse(
        std::env::args().skip(1),
        &["port", "bind", "workdir", "tmp-dir", "kill-grace-ms", "log-proxy"],
    )?;
    let port: u16 = flags
        .parse_value("port", Some("SGSIM_ADDON_PORT"))?
        .ok_or(EngineError::MissingFlag { flag: "port" })?;
    let bind: IpAddr = flags
        .parse_value("bind", None)?
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut config = AddonConfig::new(SocketAddr::new(bind, port));
    config.workdir = flags.get("workdir", None).map(PathBuf::from);
    if let Some(t) = flags.get("tmp-dir", Some("SGSIM_ADDON_TMP_DIR")) {
        config.default_tmp_dir = PathBuf::from(t);
    }
    if let Some(ms) = flags.parse_value::<u64>("kill-grace-ms", Some("SGSIM_ADDON_KILL_GRACE_MS"))? {
        config.kill_grace = std::time::Duration::from_millis(ms);
    }
    // The product's addon sends step logs to the lite-engine at localhost:20001; `none` turns
    // that off (step output then goes to stdout only).
    let proxy = flags
        .get("log-proxy", Some("SGSIM_LOG_PROXY"))
        .unwrap_or_else(|| format!("localhost:{}", sgsim_engine::delegate::LITE_ENGINE_PORT));
    if proxy != "none" {
        config.log_proxy = Some(sgsim_engine::dial::Target::parse(&proxy)?);
    }
    Ok(config)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let config = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sgsim-addon: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        terminated().await;
        s2.cancel();
    });
    match serve(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "sgsim-addon: {e}: {}",
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}
