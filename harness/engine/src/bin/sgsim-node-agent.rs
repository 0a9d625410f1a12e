//! `sgsim-node-agent`: the node's tunnels (see `sgsim_engine::node_agent`).
//!
//! Flags (or environment): `--socket` (SGSIM_AGENT_SOCKET, default /run/sgsim/agent.sock),
//! `--listen` (SGSIM_AGENT_LISTEN, default 0.0.0.0:8080), `--delegate-socket`
//! (SGSIM_DELEGATE_SOCKET, default /run/sgsim/delegate.sock), `--api-listen` (SGSIM_API_LISTEN,
//! default: no API server forward; the node's main agent uses 0.0.0.0:443), `--api-socket`
//! (SGSIM_API_SOCKET, default /run/sgsim/apiserver.sock).
//!
//! With `--relay-back ADDR` (SGSIM_RELAY_BACK) it is the in-cluster delegate relay of
//! `--backend kube` instead (`sgsim_engine::relay`): pods connect to `--listen`, sgsim's back
//! connections (through port-forward) to `ADDR`.

use std::path::PathBuf;
use std::process::ExitCode;

use sgsim_engine::cli::{Flags, terminated};
use sgsim_engine::node_agent::{AgentConfig, run};

fn config() -> sgsim_engine::Result<(AgentConfig, Option<std::net::SocketAddr>)> {
    let flags = Flags::parse(
        std::env::args().skip(1),
        &[
            "socket",
            "listen",
            "delegate-socket",
            "api-listen",
            "api-socket",
            "relay-back",
        ],
    )?;
    let relay = flags.parse_value("relay-back", Some("SGSIM_RELAY_BACK"))?;
    let mut c = AgentConfig::default();
    if let Some(s) = flags.get("socket", Some("SGSIM_AGENT_SOCKET")) {
        c.agent_socket = PathBuf::from(s);
    }
    if let Some(l) = flags.parse_value("listen", Some("SGSIM_AGENT_LISTEN"))? {
        c.delegate_listen = l;
    }
    if let Some(s) = flags.get("delegate-socket", Some("SGSIM_DELEGATE_SOCKET")) {
        c.delegate_socket = PathBuf::from(s);
    }
    if let Some(l) = flags.parse_value("api-listen", Some("SGSIM_API_LISTEN"))? {
        c.api_listen = Some(l);
    }
    if let Some(s) = flags.get("api-socket", Some("SGSIM_API_SOCKET")) {
        c.api_socket = PathBuf::from(s);
    }
    Ok((c, relay))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let (config, relay) = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sgsim-node-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match relay {
        Some(back) => {
            println!(
                "sgsim-relay: pods on {}, sgsim's back connections on {back}",
                config.delegate_listen
            );
            tokio::select! {
                r = sgsim_engine::relay::run_relay(config.delegate_listen, back) => r,
                _ = terminated() => Ok(()),
            }
        }
        None => {
            let api = config
                .api_listen
                .map(|a| format!(", {a} -> {}", config.api_socket.display()))
                .unwrap_or_default();
            println!(
                "sgsim-node-agent: tunnel on {}, {} -> {}{api}",
                config.agent_socket.display(),
                config.delegate_listen,
                config.delegate_socket.display(),
            );
            let socket = config.agent_socket.clone();
            let result = tokio::select! {
                r = run(config) => r,
                _ = terminated() => Ok(()),
            };
            let _ = std::fs::remove_file(&socket);
            result
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "sgsim-node-agent: {e}: {}",
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}
