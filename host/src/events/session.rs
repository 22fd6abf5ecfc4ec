//! One subscriber's session: `connected`, then the backlog it asked for, then live events,
//! until it leaves or is closed.
//!
//! The session subscribes to the hub before reading the backlog, and `connected` names the
//! position it subscribed at (`head`): the backlog is `(after, head]`, the live stream
//! everything after `head`, so nothing is missed or sent twice. It closes with 1008 when its
//! token expires or is revoked, its endpoint is deleted or it falls behind the hub's buffer
//! (after a `resync_required`), with 1001 when the host shuts down, and silently when the peer
//! has been silent for longer than the keepalive timeout.
//!
//! The token is authorized once, at the upgrade ([`Credential`]). Its expiry is a timer. An
//! admin token's revocation is looked up in the replica's in-memory revoked set before each
//! backlog page and at every keepalive ping, so its streams close within one ping interval (or
//! one page) of the revocation reaching the replica, at no database cost. An endpoint token is revoked only by deleting its endpoint,
//! whose `endpoint_deleted` event closes the stream already.
//!
//! The backlog is read and sent a page at a time ([`Backlog`]). The subscriber's frames are
//! rate-limited per session, each text or binary frame counted before it is parsed: one past the
//! rate is answered with an `error` message whose `code` is `RATE_LIMITED` (and not parsed), and
//! the stream stays open.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use pacsync_core::event::{ERROR_RATE_LIMITED, ERROR_UNKNOWN_MESSAGE_TYPE, StatusReply};
use pacsync_core::{ClientMessage, ClientRequest, Operation, ServerMessage};
use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::backlog::Backlog;
use super::{Scope, Streams, message};
use crate::auth::Revocations;
use crate::db;
use crate::db::events::Event;

/// The token a session was opened with, as far as the session keeps checking it.
#[derive(Clone)]
pub struct Credential {
    /// When it expires (seconds since the epoch).
    pub expires: i64,
    /// For an admin token: its id, and the revoked set to look it up in.
    pub revocation: Option<(Revocations, Uuid)>,
}

impl Credential {
    /// Whether the token has been revoked since it was checked.
    fn revoked(&self) -> bool {
        self.revocation
            .as_ref()
            .is_some_and(|(revoked, id)| revoked.contains(*id))
    }
}

/// Serves one WebSocket subscriber until it leaves, dies, lags, its token expires or is
/// revoked, its endpoint is deleted, or the host shuts down.
pub async fn run_session(
    streams: Streams,
    socket: WebSocket,
    mut scope: Scope,
    after: Option<i64>,
    token: Credential,
) {
    let app = &streams;
    let shutdown = streams.shutdown.clone();
    crate::metrics::websocket_connections(1.0);
    let _gone = ConnectionGauge;
    let (mut sink, mut stream) = socket.split();
    let (mut live, subscribed_at) = app.hub.subscribe();
    let keepalive = app.keepalive;
    let send = |message: &ServerMessage| {
        Message::Text(Utf8Bytes::from(
            serde_json::to_string(message).expect("server messages serialize"),
        ))
    };
    // The endpoint was looked up before the upgrade; a move or delete committed since then is
    // behind the subscription point, so look again now that nothing can be missed.
    if let Scope::Endpoint {
        endpoint_id,
        pool_id,
    } = &mut scope
    {
        match db::endpoints::get(&app.db, *endpoint_id).await {
            Ok(Some(endpoint)) => *pool_id = endpoint.pool_id,
            Ok(None) => {
                let _ = sink.send(Message::Close(Some(endpoint_deleted()))).await;
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-read a subscriber's endpoint"),
        }
    }

    let (endpoint_id, pool_id) = match scope {
        Scope::Endpoint {
            endpoint_id,
            pool_id,
        } => (Some(endpoint_id), pool_id),
        Scope::Pool { pool_id } => (None, pool_id),
    };
    let hello = ServerMessage::Connected {
        head: subscribed_at,
        timestamp: Utc::now(),
        endpoint_id,
        pool_id,
    };
    if sink.send(send(&hello)).await.is_err() {
        return;
    }
    if let Some(after) = after {
        let backlog = Backlog::start(&app.db, scope, after, subscribed_at, app.backlog_page);
        let mut backlog = match backlog.await {
            Ok(backlog) => backlog,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event backlog");
                let _ = sink
                    .send(send(&ServerMessage::ResyncRequired { event_id: after }))
                    .await;
                return;
            }
        };
        loop {
            let events = match backlog.next_page(&app.db).await {
                Ok(Some(events)) => events,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event backlog");
                    let resume = backlog.read_to();
                    let _ = sink
                        .send(send(&ServerMessage::ResyncRequired { event_id: resume }))
                        .await;
                    return;
                }
            };
            // A backlog can take long to send: a token revoked meanwhile gets no further page.
            if token.revoked() {
                let _ = sink.send(Message::Close(Some(token_revoked()))).await;
                return;
            }
            for event in &events {
                if let Some(message) = message_for(app, scope, event).await
                    && sink.send(send(&message)).await.is_err()
                {
                    return;
                }
                if !scope.follow(event) {
                    let _ = sink.send(Message::Close(Some(endpoint_deleted()))).await;
                    return;
                }
            }
        }
    }
    let requests: DefaultDirectRateLimiter = RateLimiter::direct(app.messages);
    let mut last_sent = subscribed_at;
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let left = u64::try_from(token.expires - Utc::now().timestamp()).unwrap_or(0);
    let expiry = tokio::time::sleep(Duration::from_secs(left));
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            // The token was checked once, at the upgrade: the stream lasts no longer than it.
            () = &mut expiry => {
                let frame = CloseFrame { code: axum::extract::ws::close_code::POLICY, reason: "token expired".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            _ = shutdown.cancelled() => {
                let frame = CloseFrame { code: axum::extract::ws::close_code::AWAY, reason: "host shutting down".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            _ = ping.tick() => {
                if token.revoked() {
                    let _ = sink.send(Message::Close(Some(token_revoked()))).await;
                    return;
                }
                if last_heard.elapsed() > keepalive.timeout {
                    tracing::debug!("dropping a silent WebSocket subscriber");
                    return;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            event = live.recv() => match event {
                Ok(event) => {
                    if event.position <= subscribed_at || !scope.matches(&event) {
                        continue;
                    }
                    last_sent = event.position;
                    if let Some(message) = message_for(app, scope, &event).await
                        && sink.send(send(&message)).await.is_err()
                    {
                        return;
                    }
                    crate::metrics::event_fanned_out();
                    if !scope.follow(&event) {
                        let _ = sink.send(Message::Close(Some(endpoint_deleted()))).await;
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "WebSocket subscriber too slow; asking it to resync");
                    let _ = sink.send(send(&ServerMessage::ResyncRequired { event_id: last_sent })).await;
                    let frame = CloseFrame { code: axum::extract::ws::close_code::POLICY, reason: "too slow; resync".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = stream.next() => {
                last_heard = tokio::time::Instant::now();
                let reply = match incoming {
                    // Every request counts, before it is even parsed: a flood of frames that are
                    // not requests costs the host no more than one of requests.
                    Some(Ok(frame @ (Message::Text(_) | Message::Binary(_)))) => {
                        match requests.check() {
                            Err(refused) => {
                                let wait = refused.wait_time_from(requests.clock().now());
                                Some(rate_limited(wait))
                            }
                            Ok(()) => match frame {
                                Message::Text(text) => answer(app, scope, &text).await,
                                _ => None,
                            },
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => None,
                };
                if let Some(reply) = reply
                    && sink.send(send(&reply)).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Closes a stream whose admin token has been revoked.
fn token_revoked() -> CloseFrame {
    CloseFrame {
        code: axum::extract::ws::close_code::POLICY,
        reason: "token revoked".into(),
    }
}

/// Closes an endpoint's stream once the endpoint is gone (its tokens were revoked with it).
fn endpoint_deleted() -> CloseFrame {
    CloseFrame {
        code: axum::extract::ws::close_code::POLICY,
        reason: "endpoint deleted".into(),
    }
}

/// Decrements the connection gauge however a session ends.
struct ConnectionGauge;

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        crate::metrics::websocket_connections(-1.0);
    }
}

/// An event's message for a subscriber; endpoint subscribers get their new sync status with a
/// target change.
async fn message_for(app: &Streams, scope: Scope, event: &Event) -> Option<ServerMessage> {
    let mut message = message(event)?;
    if let Scope::Endpoint { endpoint_id, .. } = scope
        && let ServerMessage::TargetChanged(changed) = &mut message
        && let Ok(Some(endpoint)) = db::endpoints::get(&app.db, endpoint_id).await
    {
        changed.sync_status = Some(endpoint.sync_status);
    }
    Some(message)
}

/// The answer to a request past the session's rate, which allows another after `wait`.
fn rate_limited(wait: Duration) -> ServerMessage {
    ServerMessage::Error {
        message: format!(
            "too many requests on this stream; retry in {:.1} s",
            wait.as_secs_f64()
        ),
        code: Some(ERROR_RATE_LIMITED.to_owned()),
    }
}

/// Replies to a client's request message (already counted against the session's rate);
/// anything that is not JSON with a `type` is ignored.
async fn answer(app: &Streams, scope: Scope, text: &str) -> Option<ServerMessage> {
    let request: Value = serde_json::from_str(text).ok()?;
    let kind = request["type"].as_str()?;
    let Ok(ClientMessage { kind: asked }) = serde_json::from_value(request.clone()) else {
        return Some(ServerMessage::Error {
            message: format!("unknown message type {kind:?}"),
            code: Some(ERROR_UNKNOWN_MESSAGE_TYPE.to_owned()),
        });
    };
    Some(match asked {
        ClientRequest::Ping => ServerMessage::Pong {
            timestamp: Utc::now(),
        },
        ClientRequest::GetStatus => ServerMessage::Status(match scope {
            Scope::Endpoint { endpoint_id, .. } => {
                let endpoint = db::endpoints::get(&app.db, endpoint_id)
                    .await
                    .ok()
                    .flatten();
                let active = db::operations::active_for_endpoint(&app.db, endpoint_id)
                    .await
                    .ok()
                    .flatten();
                StatusReply::Endpoint {
                    endpoint_id,
                    sync_status: endpoint.map(|e| e.sync_status),
                    active_operation: active.map(|row| Box::new(Operation::from(row))),
                    timestamp: Utc::now(),
                }
            }
            Scope::Pool { pool_id } => StatusReply::Pool {
                pool_id,
                status: crate::pools::status(&app.db, pool_id).await.ok(),
                timestamp: Utc::now(),
            },
        }),
    })
}
