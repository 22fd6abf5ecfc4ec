//! The live event hub: PostgreSQL's `operation_events` log fanned out to WebSocket subscribers.
//!
//! The log is the source of truth. Each host LISTENs on `pacsync_events`, reads new rows in
//! commit order (`position`, assigned at commit by `sql/V5__event_positions.sql`), and
//! broadcasts them to its local subscribers, so an event committed through one replica reaches
//! clients of every replica. A subscriber resuming with `after` first reads the log from the
//! database, then continues live, with no gap and no duplicate. A subscriber that falls more
//! than the buffer behind is told `resync_required` and disconnected instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db;
use crate::db::operations::OperationRow;
use crate::operations::Operation;
use crate::server::AppState;

/// The notification channel the database signals new events on.
pub const CHANNEL: &str = "pacsync_events";
/// How often the hub polls even without notifications (a safety net for lost NOTIFYs).
const POLL: Duration = Duration::from_secs(1);
/// Rows read per catch-up query.
const BATCH: i64 = 500;

/// One row of the event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    /// Commit-order position; clients see it as `event_id`.
    pub position: i64,
    /// `operation_started`, `target_changed`, ...
    pub event_type: String,
    /// The operation, for operation events.
    pub operation_id: Option<Uuid>,
    /// The endpoint concerned, if any.
    pub endpoint_id: Option<Uuid>,
    /// The pool concerned, if any.
    pub pool_id: Option<Uuid>,
    /// Operation snapshot or event details.
    pub payload: Value,
    /// Commit time (close to).
    pub created_at: DateTime<Utc>,
}

/// The endpoint was deleted and its tokens revoked (V7).
const ENDPOINT_DELETED: &str = "endpoint_deleted";
/// The endpoint moved to another pool; the event belongs to the new pool (V7).
const ENDPOINT_MOVED: &str = "endpoint_moved";

const EVENT_COLUMNS: &str =
    "position, event_type, operation_id, endpoint_id, pool_id, payload, created_at";

/// What a subscriber listens to.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One endpoint (and its pool's target changes).
    Endpoint {
        /// The endpoint.
        endpoint_id: Uuid,
        /// Its pool; follows the endpoint's moves (`endpoint_moved`).
        pool_id: Uuid,
    },
    /// Every endpoint of a pool.
    Pool {
        /// The pool.
        pool_id: Uuid,
    },
}

impl Scope {
    fn matches(&self, event: &Event) -> bool {
        match *self {
            Scope::Endpoint {
                endpoint_id,
                pool_id,
            } => {
                event.endpoint_id == Some(endpoint_id)
                    || (event.event_type == "target_changed" && event.pool_id == Some(pool_id))
            }
            Scope::Pool { pool_id } => {
                event.pool_id == Some(pool_id)
                    || (event.event_type == ENDPOINT_MOVED
                        && event.payload["from_pool_id"].as_str() == Some(&pool_id.to_string()))
            }
        }
    }

    /// Applies a delivered event to the scope: an endpoint stream follows its endpoint into a
    /// new pool, and ends (false) when the endpoint is deleted.
    fn follow(&mut self, event: &Event) -> bool {
        if let Scope::Endpoint {
            endpoint_id,
            pool_id,
        } = self
            && event.endpoint_id == Some(*endpoint_id)
        {
            match event.event_type.as_str() {
                ENDPOINT_DELETED => return false,
                ENDPOINT_MOVED => *pool_id = event.pool_id.unwrap_or(*pool_id),
                _ => {}
            }
        }
        true
    }
}

/// Fan-out of committed events to this host's subscribers.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<Event>>,
    /// Position of the last event broadcast.
    delivered: Arc<AtomicI64>,
}

impl EventHub {
    /// A hub whose subscribers may fall `buffer` events behind before being cut off.
    pub fn new(buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        Self {
            sender,
            delivered: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Subscribes, returning the receiver and the last position broadcast before it existed.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Event>>, i64) {
        let receiver = self.sender.subscribe();
        (receiver, self.delivered.load(Ordering::SeqCst))
    }

    /// Follows the log until `shutdown`: LISTEN for wake-ups, read in position order, broadcast.
    /// Survives database restarts: it reconnects and catches up from the last position it sent.
    pub async fn run(self, db: PgPool, shutdown: CancellationToken) {
        let mut last = loop {
            match sqlx::query_scalar::<_, Option<i64>>("SELECT max(position) FROM operation_events")
                .fetch_one(&db)
                .await
            {
                Ok(max) => break max.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(error = %e, "event hub cannot read the log yet; retrying");
                    tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(POLL) => {} }
                }
            }
        };
        self.delivered.store(last, Ordering::SeqCst);
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                listener = listen(&db).await;
            }
            // Catch up on everything committed since `last`.
            match read_after(&db, last, BATCH).await {
                Ok(events) => {
                    let full = events.len() as i64 == BATCH;
                    for event in events {
                        last = event.position;
                        let _ = self.sender.send(Arc::new(event));
                        self.delivered.store(last, Ordering::SeqCst);
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event hub cannot read the log; retrying"),
            }
            let wake = async {
                match listener.as_mut() {
                    Some(l) => match tokio::time::timeout(POLL, l.try_recv()).await {
                        Ok(Ok(Some(_))) | Err(_) => true,
                        // Connection lost: notifications in between are gone, the next read
                        // catches up from the log.
                        Ok(Ok(None)) => true,
                        Ok(Err(_)) => false,
                    },
                    None => {
                        tokio::time::sleep(POLL).await;
                        true
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                healthy = wake => if !healthy {
                    listener = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                },
            }
        }
    }
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(db).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

async fn read_after(db: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM operation_events WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The log between two positions for one scope, for resuming subscribers.
async fn backlog(
    db: &PgPool,
    scope: Scope,
    after: i64,
    upto: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    match scope {
        Scope::Pool { pool_id } => {
            sqlx::query_as(&format!(
                "SELECT {EVENT_COLUMNS} FROM operation_events
                 WHERE position > $1 AND position <= $2
                   AND (pool_id = $3
                        OR (event_type = 'endpoint_moved' AND payload->>'from_pool_id' = $3::text))
                 ORDER BY position"
            ))
            .bind(after)
            .bind(upto)
            .bind(pool_id)
            .fetch_all(db)
            .await
        }
        Scope::Endpoint {
            endpoint_id,
            pool_id,
        } => {
            // The endpoint may have changed pools within the range: read its own events and every
            // target change, then walk its moves to keep the target changes of the pool it was
            // in at each point.
            let events: Vec<Event> = sqlx::query_as(&format!(
                "SELECT {EVENT_COLUMNS} FROM operation_events
                 WHERE position > $1 AND position <= $2
                   AND (endpoint_id = $3 OR event_type = 'target_changed')
                 ORDER BY position"
            ))
            .bind(after)
            .bind(upto)
            .bind(endpoint_id)
            .fetch_all(db)
            .await?;
            let first_pool = events
                .iter()
                .find(|e| e.event_type == ENDPOINT_MOVED && e.endpoint_id == Some(endpoint_id))
                .and_then(|e| e.payload["from_pool_id"].as_str()?.parse().ok())
                .unwrap_or(pool_id);
            let mut walk = Scope::Endpoint {
                endpoint_id,
                pool_id: first_pool,
            };
            Ok(events
                .into_iter()
                .filter(|e| {
                    let wanted = walk.matches(e);
                    walk.follow(e);
                    wanted
                })
                .collect())
        }
    }
}

/// The wire form of an event, in the original protocol: `type`, `operation`, `timestamp`, plus
/// `event_id`.
pub fn message(event: &Event) -> Value {
    let mut message = json!({
        "type": event.event_type,
        "timestamp": event.created_at,
        "event_id": event.position,
    });
    if event.operation_id.is_some()
        && let Ok(row) = serde_json::from_value::<OperationRow>(event.payload.clone())
    {
        message["operation"] = serde_json::to_value(Operation::from(row)).unwrap_or(Value::Null);
    } else if let (Some(obj), Some(details)) = (message.as_object_mut(), event.payload.as_object())
    {
        for (key, value) in details {
            obj.entry(key.clone()).or_insert(value.clone());
        }
    }
    message
}

/// Keepalive settings of a session.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// How often the server pings.
    pub ping_every: Duration,
    /// Silence after which the connection is considered dead.
    pub timeout: Duration,
}

/// Serves one WebSocket subscriber until it leaves, dies, lags, its token expires (`expires`,
/// seconds since the epoch), its endpoint is deleted, or the host shuts down.
pub async fn run_session(
    app: AppState,
    socket: WebSocket,
    mut scope: Scope,
    after: Option<i64>,
    expires: i64,
    shutdown: CancellationToken,
) {
    crate::metrics::websocket_connections(1.0);
    let _gone = ConnectionGauge;
    let (mut sink, mut stream) = socket.split();
    let (mut live, subscribed_at) = app.events.subscribe();
    let keepalive = app.config.keepalive;
    let send = |value: Value| Message::Text(Utf8Bytes::from(value.to_string()));
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

    let mut hello =
        json!({ "type": "connected", "event_id": subscribed_at, "timestamp": Utc::now() });
    match scope {
        Scope::Endpoint {
            endpoint_id,
            pool_id,
        } => {
            hello["endpoint_id"] = json!(endpoint_id);
            hello["pool_id"] = json!(pool_id);
        }
        Scope::Pool { pool_id } => hello["pool_id"] = json!(pool_id),
    }
    if sink.send(send(hello)).await.is_err() {
        return;
    }
    if let Some(after) = after {
        match backlog(&app.db, scope, after, subscribed_at).await {
            Ok(events) => {
                for event in &events {
                    if sink
                        .send(send(message_for(&app, scope, event).await))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !scope.follow(event) {
                        let _ = sink.send(Message::Close(Some(endpoint_deleted()))).await;
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event backlog");
                let _ = sink
                    .send(send(json!({"type": "resync_required", "event_id": after})))
                    .await;
                return;
            }
        }
    }
    let mut last_sent = subscribed_at;
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let left = u64::try_from(expires - Utc::now().timestamp()).unwrap_or(0);
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
                    if sink.send(send(message_for(&app, scope, &event).await)).await.is_err() {
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
                    let _ = sink.send(send(json!({"type": "resync_required", "event_id": last_sent}))).await;
                    let frame = CloseFrame { code: axum::extract::ws::close_code::POLICY, reason: "too slow; resync".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = stream.next() => {
                last_heard = tokio::time::Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reply) = answer(&app, scope, &text).await
                            && sink.send(send(reply)).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        }
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
async fn message_for(app: &AppState, scope: Scope, event: &Event) -> Value {
    let mut msg = message(event);
    if let Scope::Endpoint { endpoint_id, .. } = scope
        && event.event_type == "target_changed"
        && let Ok(Some(endpoint)) = db::endpoints::get(&app.db, endpoint_id).await
    {
        msg["sync_status"] = json!(endpoint.sync_status);
    }
    msg
}

/// Replies to a client's request message.
async fn answer(app: &AppState, scope: Scope, text: &str) -> Option<Value> {
    let request: Value = serde_json::from_str(text).ok()?;
    match request["type"].as_str()? {
        "ping" => Some(json!({ "type": "pong", "timestamp": Utc::now() })),
        "get_status" => Some(match scope {
            Scope::Endpoint { endpoint_id, .. } => {
                let endpoint = db::endpoints::get(&app.db, endpoint_id)
                    .await
                    .ok()
                    .flatten();
                let active = db::operations::active_for_endpoint(&app.db, endpoint_id)
                    .await
                    .ok()
                    .flatten();
                json!({
                    "type": "status",
                    "endpoint_id": endpoint_id,
                    "sync_status": endpoint.map(|e| e.sync_status),
                    "active_operation": active.map(Operation::from),
                    "timestamp": Utc::now(),
                })
            }
            Scope::Pool { pool_id } => {
                let status = crate::pools::status(app, pool_id).await.ok();
                json!({ "type": "status", "pool_id": pool_id, "status": status, "timestamp": Utc::now() })
            }
        }),
        other => {
            Some(json!({ "type": "error", "message": format!("unknown message type {other:?}") }))
        }
    }
}
