//! The endpoint's live event stream (`GET /api/sync/{endpoint_id}/status`, a WebSocket).
//!
//! The CLI follows its operation on it and the agent wakes up on it when work arrives. Both keep
//! a slow HTTP refresh as a safety net, so a proxy that drops WebSockets costs latency, not
//! correctness. After a drop, reconnecting with `?after=` replays what was missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::api::Operation;

/// Why the stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The server URL has no WebSocket equivalent (it is neither `http://` nor `https://`).
    #[error("no WebSocket URL for {0}")]
    Unsupported(String),
    /// Connecting or the handshake failed (refused, 401/403, timeout).
    #[error("cannot open the event stream: {0}")]
    Connect(String),
}

/// What arrived on the stream.
#[derive(Debug)]
pub enum Event {
    /// An event about an operation, with the operation as it is now.
    Operation {
        /// The event's type (`operation_created`, `operation_progress`, ...).
        kind: String,
        /// The operation after the event.
        operation: Box<Operation>,
    },
    /// The server lost track of this subscriber: re-read state over HTTP.
    ResyncRequired,
    /// Any other event (sync status, target changes, ...).
    Other(Value),
}

/// An open event stream of one endpoint.
pub struct EventStream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    last_event_id: Option<i64>,
    url: String,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl EventStream {
    /// Opens the stream of `endpoint` on `server` with `token`.
    pub async fn connect(
        server: &str,
        token: &str,
        endpoint: Uuid,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Self, StreamError> {
        let base = server.trim_end_matches('/');
        let ws_base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(StreamError::Unsupported(base.to_owned()));
        };
        let url = format!("{ws_base}/api/sync/{endpoint}/status");
        let ws = open(&url, token, None, tls).await?;
        Ok(Self {
            ws,
            last_event_id: None,
            url,
            token: token.to_owned(),
            tls: tls.clone(),
        })
    }

    /// The next message, or `None` once the connection is gone. Pings are answered by the
    /// library as they are read.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            let message = match self.ws.next().await? {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            };
            let Ok(value) = serde_json::from_str::<Value>(&message) else {
                continue;
            };
            if let Some(id) = value["event_id"].as_i64() {
                self.last_event_id = Some(id);
            }
            let kind = value["type"].as_str().unwrap_or_default().to_owned();
            if kind == "resync_required" {
                return Some(Event::ResyncRequired);
            }
            if let Ok(operation) = serde_json::from_value::<Operation>(value["operation"].clone()) {
                return Some(Event::Operation {
                    kind,
                    operation: Box::new(operation),
                });
            }
            return Some(Event::Other(value));
        }
    }

    /// Reopens a dropped stream, replaying every event since the last one seen.
    pub async fn reconnect(&mut self) -> Result<(), StreamError> {
        self.ws = open(&self.url, &self.token, self.last_event_id, &self.tls).await?;
        Ok(())
    }

    /// Closes the stream politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
    }
}

async fn open(
    url: &str,
    token: &str,
    after: Option<i64>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, StreamError> {
    let url = match after {
        Some(after) => format!("{url}?after={after}"),
        None => url.to_owned(),
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| StreamError::Connect(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| StreamError::Connect("the token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    // Only `wss://` uses the connector; its roots are the same as the HTTP client's.
    let connector = Connector::Rustls(tls.clone());
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        // The handshake's error names the status (401, 403, 404), never the token.
        Ok(Err(tungstenite::Error::Http(response))) => Err(StreamError::Connect(format!(
            "the host answered {}",
            response.status()
        ))),
        Ok(Err(e)) => Err(StreamError::Connect(e.to_string())),
        Err(_) => Err(StreamError::Connect("timed out".into())),
    }
}
