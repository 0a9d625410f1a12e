//! `sgsim-lite-engine`: serves LiteEngine on 0.0.0.0:20001 (see `sgsim_engine::lite_engine`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use sgsim_engine::cli::{Flags, terminated};
use sgsim_engine::lite_engine::{LiteEngineConfig, serve};
use tokio_util::sync::CancellationToken;

fn config() -> sgsim_engine::Result<LiteEngineConfig> {
    let flags = Flags::parse(
        std::env::args().skip(1),
        &[
            "port",
            "bind",
            "addon-host",
            "delegate-endpoint",
            "addon-dial-timeout-secs",
        ],
    )?;
    let port: u16 = flags
        .parse_value("port", Some("SGSIM_LITE_ENGINE_PORT"))?
        .unwrap_or(20001);
    let bind: IpAddr = flags
        .parse_value("bind", None)?
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut c = LiteEngineConfig::new(SocketAddr::new(bind, port));
    if let Some(h) = flags.get("addon-host", Some("SGSIM_ADDON_HOST")) {
        c.addon_host = h;
    }
    c.delegate_override = flags.get("delegate-endpoint", Some("SGSIM_DELEGATE_ENDPOINT"));
    c.delegate_env = std::env::var("DELEGATE_SERVICE_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty());
    c.delegate_token = std::env::var("DELEGATE_SERVICE_TOKEN").ok();
    c.service_id = std::env::var("DELEGATE_SERVICE_ID").ok();
    c.log_service = sgsim_engine::lite_engine::log_proxy::client_from_env(|k| std::env::var(k).ok());
    if let Some(s) = flags.parse_value::<u64>("addon-dial-timeout-secs", Some("SGSIM_ADDON_DIAL_TIMEOUT_SECS"))? {
        c.addon_dial_timeout = Duration::from_secs(s);
    }
    Ok(c)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let config = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sgsim-lite-engine: {e}");
            return ExitCode::from(2);
        }
    };
    println!("lite-engine listening on {}", config.listen);
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
                "sgsim-lite-engine: {e}: {}",
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}
