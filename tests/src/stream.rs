//! A WebSocket client for the event streams.

use std::time::Duration;

use serde_json::Value;

/// A WebSocket client for the event streams.
pub struct Stream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Why a stream could not be opened: the HTTP status the host answered with.
pub type StreamRefused = u16;

impl Stream {
    /// Opens `path` on `base` (http://...) with a bearer token header.
    pub async fn open(base: &str, path: &str, token: Option<&str>) -> Result<Self, StreamRefused> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{}", base.replacen("http://", "ws://", 1), path);
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// The next JSON message, or `None` when the stream closed or `timeout` passed.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next message of one of `types`, skipping others; panics after `timeout`.
    pub async fn next_of(&mut self, types: &[&str], timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {types:?} message within {timeout:?}"));
            if types.contains(&message["type"].as_str().unwrap_or("")) {
                return message;
            }
        }
    }

    /// Whether the server ended the stream (close, EOF or reset) within `timeout`, reading and
    /// discarding (and so answering pings for) whatever arrives meanwhile.
    pub async fn ended_within(&mut self, timeout: Duration) -> bool {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, value: Value) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                value.to_string().into(),
            ))
            .await
            .unwrap();
    }

    /// Sends `text` as it is, in a text frame (whether or not it is JSON).
    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    /// The close code the server ended the stream with, if it did within `timeout`.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<u16> {
        self.close_frame(timeout).await.map(|(code, _)| code)
    }

    /// The close code and reason the server ended the stream with, if it did within `timeout`.
    pub async fn close_frame(&mut self, timeout: Duration) -> Option<(u16, String)> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
            {
                Ok(Message::Close(frame)) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
