//! The lite-engine's `LogProxy` service: every call an addon makes is relayed to the log service's
//! HTTP API with the lite-engine's HARNESS_LOG_SERVICE_ENDPOINT, HARNESS_LOG_SERVICE_TOKEN and
//! HARNESS_ACCOUNT_ID, as the product's lite-engine does (its `logproxy_handler.go`). Errors go
//! back as gRPC UNKNOWN with the reason, as a Go error does.

use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::log_service::{HttpLogClient, Line, LogClientError};
use crate::proto::engine::log_proxy_server::LogProxy;
use crate::proto::engine::{
    CloseRequest, CloseResponse, OpenRequest, OpenResponse, UploadLinkRequest, UploadLinkResponse, UploadRequest,
    UploadResponse, UploadUsingLinkRequest, UploadUsingLinkResponse, WriteRequest, WriteResponse,
};

/// How long `Open` keeps retrying an unreachable log service (the product's client: 10 s).
const OPEN_RETRY: Duration = Duration::from_secs(10);

/// The client the lite-engine's environment describes, or why there is none (the product's
/// messages, checked in its order: endpoint, account, token).
pub fn client_from_env(get: impl Fn(&str) -> Option<String>) -> Result<HttpLogClient, String> {
    let endpoint = get("HARNESS_LOG_SERVICE_ENDPOINT")
        .ok_or("log service endpoint variable not set HARNESS_LOG_SERVICE_ENDPOINT")?;
    let account_id = get("HARNESS_ACCOUNT_ID").ok_or("account ID environment variable not set HARNESS_ACCOUNT_ID")?;
    let token = get("HARNESS_LOG_SERVICE_TOKEN").ok_or("log service token not set HARNESS_LOG_SERVICE_TOKEN")?;
    Ok(HttpLogClient {
        endpoint,
        account_id,
        token,
    })
}

/// The LogProxy gRPC service.
#[derive(Clone)]
pub struct LogProxyService {
    client: Result<HttpLogClient, String>,
}

impl LogProxyService {
    pub fn new(client: Result<HttpLogClient, String>) -> Self {
        LogProxyService { client }
    }

    fn client(&self) -> Result<&HttpLogClient, Status> {
        self.client.as_ref().map_err(|e| Status::unknown(e.clone()))
    }
}

fn unknown(e: LogClientError) -> Status {
    Status::unknown(e.to_string())
}

/// Lines as the addon sent them (JSON each); the first one that is not a line is the error.
fn parse_lines(lines: &[String]) -> Result<Vec<Line>, Status> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Line>(l)
                .map_err(|_| Status::unknown(format!("could not unmarshal received lines, first error instance: {l}")))
        })
        .collect()
}

/// The lines of every message of an upload stream, concatenated, and the last message's link or
/// key (`split` gives both of a message).
async fn drain<M>(
    mut stream: Streaming<M>,
    split: impl Fn(M) -> (String, Vec<String>),
) -> Result<(String, Vec<u8>), Status> {
    let mut last = String::new();
    let mut data = Vec::new();
    while let Some(msg) = stream.next().await {
        let (name, lines) = split(msg?);
        last = name;
        for l in lines {
            data.extend_from_slice(l.as_bytes());
        }
    }
    Ok((last, data))
}

#[tonic::async_trait]
impl LogProxy for LogProxyService {
    async fn write(&self, r: Request<WriteRequest>) -> Result<Response<WriteResponse>, Status> {
        let c = self.client()?;
        let r = r.into_inner();
        let lines = parse_lines(&r.lines)?;
        c.write(&r.key, &lines).await.map_err(unknown)?;
        Ok(Response::new(WriteResponse {}))
    }

    async fn open(&self, r: Request<OpenRequest>) -> Result<Response<OpenResponse>, Status> {
        let c = self.client()?;
        let key = r.into_inner().key;
        let deadline = Instant::now() + OPEN_RETRY;
        loop {
            match c.open(&key).await {
                Ok(()) => return Ok(Response::new(OpenResponse {})),
                Err(LogClientError::Transport { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(unknown(e)),
            }
        }
    }

    async fn upload_link(&self, r: Request<UploadLinkRequest>) -> Result<Response<UploadLinkResponse>, Status> {
        let c = self.client()?;
        let link = c.upload_link(&r.into_inner().key).await.map_err(unknown)?;
        Ok(Response::new(UploadLinkResponse { link }))
    }

    async fn upload_using_link(
        &self,
        r: Request<Streaming<UploadUsingLinkRequest>>,
    ) -> Result<Response<UploadUsingLinkResponse>, Status> {
        let c = self.client()?;
        let (link, data) = drain(r.into_inner(), |m| (m.link, m.lines)).await?;
        if link.is_empty() {
            return Err(Status::unknown("no link received from client"));
        }
        c.upload_using_link(&link, data).await.map_err(unknown)?;
        Ok(Response::new(UploadUsingLinkResponse {}))
    }

    async fn close(&self, r: Request<CloseRequest>) -> Result<Response<CloseResponse>, Status> {
        let c = self.client()?;
        c.close(&r.into_inner().key).await.map_err(unknown)?;
        Ok(Response::new(CloseResponse {}))
    }

    async fn upload(&self, r: Request<Streaming<UploadRequest>>) -> Result<Response<UploadResponse>, Status> {
        let c = self.client()?;
        let (key, data) = drain(r.into_inner(), |m| (m.key, m.lines)).await?;
        c.upload(&key, data).await.map_err(unknown)?;
        Ok(Response::new(UploadResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_settings_give_the_products_reasons_in_its_order() {
        let none = |_: &str| None;
        assert_eq!(
            client_from_env(none).unwrap_err(),
            "log service endpoint variable not set HARNESS_LOG_SERVICE_ENDPOINT"
        );
        let only_ep = |k: &str| (k == "HARNESS_LOG_SERVICE_ENDPOINT").then(|| "http://x".to_string());
        assert_eq!(
            client_from_env(only_ep).unwrap_err(),
            "account ID environment variable not set HARNESS_ACCOUNT_ID"
        );
        let no_token = |k: &str| (k != "HARNESS_LOG_SERVICE_TOKEN").then(|| "v".to_string());
        assert_eq!(
            client_from_env(no_token).unwrap_err(),
            "log service token not set HARNESS_LOG_SERVICE_TOKEN"
        );
        assert!(client_from_env(|_| Some("v".into())).is_ok());
    }

    #[test]
    fn a_line_that_is_not_json_is_refused_with_the_products_words() {
        let e = parse_lines(&["{\"out\":\"a\\n\"}".into(), "plain".into()]).unwrap_err();
        assert_eq!(
            e.message(),
            "could not unmarshal received lines, first error instance: plain"
        );
    }
}
