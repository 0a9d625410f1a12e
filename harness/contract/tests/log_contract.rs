//! sgsim's lite-engine and log service against a LogProxy client built only from docs/protocol.md:
//! a documented log stream (open, write, upload through a link, close) ends up as the step log
//! sgsim reads, and a line that is not a documented log line is refused with the product's words.

use std::time::{Duration, Instant};

use sgsim_contract::wire::engine::log_proxy_client::LogProxyClient;
use sgsim_contract::wire::engine::{
    CloseRequest, OpenRequest, UploadLinkRequest, UploadUsingLinkRequest, WriteRequest,
};
use sgsim_engine::delegate::{DelegateServer, ServeGuard};
use sgsim_engine::lite_engine::{LiteEngineConfig, serve};
use sgsim_engine::log_service::{HttpLogClient, LOG_SERVICE_PATH};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

struct Rig {
    delegate: DelegateServer,
    _serve: ServeGuard,
    stop: CancellationToken,
    proxy: LogProxyClient<Channel>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn rig() -> Rig {
    let delegate = DelegateServer::new();
    let (addr, serve_guard) = delegate.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = LiteEngineConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
    config.log_service = Ok(HttpLogClient {
        endpoint: format!("http://{addr}{LOG_SERVICE_PATH}"),
        account_id: "acct".into(),
        token: delegate.token().into(),
    });
    let stop = CancellationToken::new();
    tokio::spawn(serve(config, stop.clone()));
    let end = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        match Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < end, "lite-engine not up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Rig {
        delegate,
        _serve: serve_guard,
        stop,
        proxy: LogProxyClient::new(channel),
    }
}

/// A log line as docs/protocol.md describes it.
fn line(pos: u32, out: &str) -> String {
    format!(
        "{{\"level\":\"info\",\"pos\":{pos},\"out\":{out:?},\"time\":\"2026-12-04T10:00:0{pos}.000000000Z\",\"args\":{{}}}}"
    )
}

#[tokio::test]
async fn a_documented_log_stream_becomes_the_step_log() {
    let mut r = rig().await;
    let key = "exec/step one".to_string();
    r.proxy.open(OpenRequest { key: key.clone() }).await.unwrap();
    r.proxy
        .write(WriteRequest {
            key: key.clone(),
            lines: vec![line(0, "first\n")],
        })
        .await
        .unwrap();
    assert_eq!(r.delegate.logs().text(&key).as_deref(), Some("first\n"));

    let link = r
        .proxy
        .upload_link(UploadLinkRequest { key: key.clone() })
        .await
        .unwrap()
        .into_inner()
        .link;
    let batches = vec![
        UploadUsingLinkRequest {
            link: link.clone(),
            lines: vec![format!("{}\n", line(0, "first\n"))],
        },
        UploadUsingLinkRequest {
            link,
            lines: vec![format!("{}\n", line(1, "second\n"))],
        },
    ];
    r.proxy.upload_using_link(tokio_stream::iter(batches)).await.unwrap();
    r.proxy.close(CloseRequest { key: key.clone() }).await.unwrap();
    let logs = r.delegate.logs();
    assert!(logs.closed(&key));
    assert_eq!(logs.text(&key).as_deref(), Some("first\nsecond\n"));
    let lines = logs.lines(&key).unwrap();
    assert_eq!(lines[1].number, 1);
    assert_eq!(lines[1].time, "2026-12-04T10:00:01.000000000Z");
}

#[tokio::test]
async fn a_line_that_is_not_a_log_line_is_refused() {
    let mut r = rig().await;
    r.proxy.open(OpenRequest { key: "k".into() }).await.unwrap();
    let err = r
        .proxy
        .write(WriteRequest {
            key: "k".into(),
            lines: vec!["not json".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unknown);
    assert_eq!(
        err.message(),
        "could not unmarshal received lines, first error instance: not json"
    );
    // writing to a stream nobody opened: the log service's answer comes back
    let err = r
        .proxy
        .write(WriteRequest {
            key: "never-opened".into(),
            lines: vec![line(0, "x\n")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "stream: not found");
}
