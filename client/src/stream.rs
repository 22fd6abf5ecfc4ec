//! The endpoint's live event stream (`GET /api/sync/{endpoint_id}/status`, a WebSocket).
//!
//! The CLI follows its operation on it and the agent wakes up on it when work arrives. Both keep
//! a slow HTTP refresh as a safety net, so a proxy that drops WebSockets costs latency, not
//! correctness. After a drop, reconnecting with `?after=` replays what was missed.
//!
//! The resume cursor is the largest `event_id` of the events received. Until one arrives it is
//! the `head` of the `connected` message, so a reconnect still replays everything since the live
//! stream started; a later `head` never moves it, since a replayed backlog lies before `head`.
//! A `resync_required` moves it to the position the host names: what lies before is re-read
//! over HTTP rather than replayed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pacsync_core::{EventType, Operation, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

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
        /// What happened to it.
        kind: EventType,
        /// The operation after the event.
        operation: Box<Operation>,
    },
    /// The server lost track of this subscriber: re-read state over HTTP.
    ResyncRequired,
    /// Any other message (`connected`, sync status and target changes, ...).
    Other(Box<ServerMessage>),
}

/// An open event stream of one endpoint.
pub struct EventStream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    cursor: Option<i64>,
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
            cursor: None,
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
            // A message this client does not know is skipped, like a malformed one.
            let Ok(message) = serde_json::from_str::<ServerMessage>(&message) else {
                continue;
            };
            self.cursor = advance(self.cursor, &message);
            if matches!(message, ServerMessage::ResyncRequired { .. }) {
                return Some(Event::ResyncRequired);
            }
            if let Some((kind, operation)) = message.operation() {
                return Some(Event::Operation {
                    kind,
                    operation: Box::new(operation.clone()),
                });
            }
            return Some(Event::Other(Box::new(message)));
        }
    }

    /// Reopens a dropped stream, replaying every event since the last one seen.
    pub async fn reconnect(&mut self) -> Result<(), StreamError> {
        self.ws = open(&self.url, &self.token, self.cursor, &self.tls).await?;
        Ok(())
    }

    /// Closes the stream politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
    }
}

/// The resume cursor after `message`.
fn advance(cursor: Option<i64>, message: &ServerMessage) -> Option<i64> {
    let seen = match message {
        ServerMessage::Connected { head, .. } => return cursor.or(Some(*head)),
        // Everything up to here was sent, or is to be re-read over HTTP.
        ServerMessage::ResyncRequired { event_id } => Some(*event_id),
        other => other.event_id(),
    };
    match (cursor, seen) {
        (Some(cursor), Some(seen)) => Some(cursor.max(seen)),
        (cursor, seen) => cursor.or(seen),
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

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use pacsync_core::event::EndpointMoved;

    use super::*;

    fn connected(head: i64) -> ServerMessage {
        ServerMessage::Connected {
            head,
            timestamp: DateTime::UNIX_EPOCH,
            endpoint_id: None,
            pool_id: Uuid::nil(),
        }
    }

    fn event(event_id: i64) -> ServerMessage {
        ServerMessage::EndpointMoved(EndpointMoved {
            event_id,
            timestamp: DateTime::UNIX_EPOCH,
            endpoint_id: Uuid::nil(),
            from_pool_id: Uuid::nil(),
            to_pool_id: Uuid::nil(),
        })
    }

    #[test]
    fn the_cursor_starts_at_head_and_then_follows_the_largest_event() {
        let cursor = advance(None, &connected(40));
        assert_eq!(
            cursor,
            Some(40),
            "a reconnect resumes where the live stream started"
        );
        let cursor = advance(cursor, &event(41));
        assert_eq!(cursor, Some(41));
        // On a reconnect: the new head never moves the cursor, the replayed backlog does.
        let cursor = advance(cursor, &connected(50));
        assert_eq!(cursor, Some(41));
        let cursor = advance(cursor, &event(45));
        assert_eq!(cursor, Some(45));
        assert_eq!(advance(cursor, &event(44)), Some(45), "never backwards");
        let pong = ServerMessage::Pong {
            timestamp: DateTime::UNIX_EPOCH,
        };
        assert_eq!(advance(cursor, &pong), Some(45));
        let resync = ServerMessage::ResyncRequired { event_id: 60 };
        assert_eq!(advance(cursor, &resync), Some(60));
    }
}
