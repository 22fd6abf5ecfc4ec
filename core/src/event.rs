//! The event stream's vocabulary: the kinds of event the database logs, and every message a
//! subscriber receives on `GET /api/sync/{endpoint_id}/status` or
//! `GET /api/sync/pools/{pool_id}/events`.
//!
//! A session starts with [`ServerMessage::Connected`], whose `head` is the log position the
//! live stream continues after. Every event carries its own position as `event_id`; a client
//! keeps the largest `event_id` it has seen (or `head`, if it has seen none) and resumes with
//! `?after=` that cursor. `head` is not an event: a backlog replayed after `connected` has
//! smaller ids than it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation::Operation;
use crate::report::PoolStatus;
use crate::status::SyncStatus;

/// What an entry of the event log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An operation was created.
    OperationCreated,
    /// The agent claimed an operation.
    OperationStarted,
    /// The agent reported progress.
    OperationProgress,
    /// An operation completed.
    OperationCompleted,
    /// An operation failed.
    OperationFailed,
    /// An operation was cancelled.
    OperationCancelled,
    /// A cancel was requested while the operation ran.
    OperationCancelRequested,
    /// An endpoint's classification changed.
    SyncStatusChanged,
    /// A pool's target moved to a new generation.
    TargetChanged,
    /// An endpoint moved to another pool; the event belongs to the new pool.
    EndpointMoved,
    /// An endpoint was deleted and its tokens revoked.
    EndpointDeleted,
    /// An endpoint registered into the pool.
    EndpointRegistered,
    /// An endpoint's agent opened its event stream: it is online.
    EndpointOnline,
    /// An endpoint's agent closed its last event stream: it is offline.
    EndpointOffline,
}

impl EventType {
    /// Whether the event's payload is the operation it is about.
    pub fn is_about_an_operation(self) -> bool {
        !matches!(
            self,
            EventType::SyncStatusChanged
                | EventType::TargetChanged
                | EventType::EndpointMoved
                | EventType::EndpointDeleted
                | EventType::EndpointRegistered
                | EventType::EndpointOnline
                | EventType::EndpointOffline
        )
    }
}

crate::spelling::spelled!(EventType {
    OperationCreated => "operation_created",
    OperationStarted => "operation_started",
    OperationProgress => "operation_progress",
    OperationCompleted => "operation_completed",
    OperationFailed => "operation_failed",
    OperationCancelled => "operation_cancelled",
    OperationCancelRequested => "operation_cancel_requested",
    SyncStatusChanged => "sync_status_changed",
    TargetChanged => "target_changed",
    EndpointMoved => "endpoint_moved",
    EndpointDeleted => "endpoint_deleted",
    EndpointRegistered => "endpoint_registered",
    EndpointOnline => "endpoint_online",
    EndpointOffline => "endpoint_offline",
});

/// An event about an operation, with the operation as it is after the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationEvent {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The operation after the event.
    pub operation: Operation,
}

/// An endpoint's classification changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatusChanged {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Its pool.
    pub pool_id: Uuid,
    /// The new classification.
    pub sync_status: SyncStatus,
    /// The classification before.
    pub previous_sync_status: SyncStatus,
}

/// A pool's target moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetChanged {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The pool.
    pub pool_id: Uuid,
    /// The new target generation.
    pub generation: i64,
    /// The new target state.
    pub state_id: String,
    /// The set-as-latest operation that moved it, if any.
    pub operation_id: Option<Uuid>,
    /// The endpoint whose state became the target, if any.
    pub endpoint_id: Option<Uuid>,
    /// On an endpoint's stream: that endpoint's classification against the new target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
}

/// An endpoint moved to another pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointMoved {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The pool it left.
    pub from_pool_id: Uuid,
    /// The pool it joined.
    pub to_pool_id: Uuid,
}

/// An endpoint was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointDeleted {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The pool it was in.
    pub pool_id: Uuid,
}

/// An endpoint registered into a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRegistered {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The pool it joined.
    pub pool_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
}

/// An endpoint came online or went offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointPresence {
    /// The event's log position.
    pub event_id: i64,
    /// When it was committed (close to).
    pub timestamp: DateTime<Utc>,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// Its pool.
    pub pool_id: Uuid,
}

/// Every message the host sends a stream subscriber, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message of a session.
    Connected {
        /// The log position the live stream continues after; not an event id.
        head: i64,
        /// When the session started.
        timestamp: DateTime<Utc>,
        /// The endpoint, on an endpoint's stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_id: Option<Uuid>,
        /// The pool the stream follows.
        pool_id: Uuid,
    },
    /// See [`EventType::OperationCreated`].
    OperationCreated(OperationEvent),
    /// See [`EventType::OperationStarted`].
    OperationStarted(OperationEvent),
    /// See [`EventType::OperationProgress`].
    OperationProgress(OperationEvent),
    /// See [`EventType::OperationCompleted`].
    OperationCompleted(OperationEvent),
    /// See [`EventType::OperationFailed`].
    OperationFailed(OperationEvent),
    /// See [`EventType::OperationCancelled`].
    OperationCancelled(OperationEvent),
    /// See [`EventType::OperationCancelRequested`].
    OperationCancelRequested(OperationEvent),
    /// See [`EventType::SyncStatusChanged`].
    SyncStatusChanged(SyncStatusChanged),
    /// See [`EventType::TargetChanged`].
    TargetChanged(TargetChanged),
    /// See [`EventType::EndpointMoved`].
    EndpointMoved(EndpointMoved),
    /// See [`EventType::EndpointDeleted`].
    EndpointDeleted(EndpointDeleted),
    /// See [`EventType::EndpointRegistered`].
    EndpointRegistered(EndpointRegistered),
    /// See [`EventType::EndpointOnline`].
    EndpointOnline(EndpointPresence),
    /// See [`EventType::EndpointOffline`].
    EndpointOffline(EndpointPresence),
    /// The subscriber fell too far behind or the backlog could not be read: re-read state over
    /// HTTP, then resume after `event_id`, the last event it was sent.
    ResyncRequired {
        /// The last position sent.
        event_id: i64,
    },
    /// The answer to `{"type":"get_status"}`.
    Status(StatusReply),
    /// The answer to `{"type":"ping"}`.
    Pong {
        /// When the host answered.
        timestamp: DateTime<Utc>,
    },
    /// The host did not answer a subscriber's request: it is past the session's request rate
    /// ([`ERROR_RATE_LIMITED`]) or of a type the host does not know
    /// ([`ERROR_UNKNOWN_MESSAGE_TYPE`]). The stream stays open.
    Error {
        /// What was wrong, for people.
        message: String,
        /// What was wrong, for programs: match on this, never on `message`. Absent from hosts
        /// that predate it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

/// The `code` of an `error` answering a request past the session's request rate: send it again
/// after the time the message names.
pub const ERROR_RATE_LIMITED: &str = "RATE_LIMITED";
/// The `code` of an `error` answering a request whose `type` the host does not know.
pub const ERROR_UNKNOWN_MESSAGE_TYPE: &str = "UNKNOWN_MESSAGE_TYPE";

/// The answer to `{"type":"get_status"}`: an endpoint's classification and active operation,
/// or a pool's status summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusReply {
    /// On an endpoint's stream.
    Endpoint {
        /// The endpoint.
        endpoint_id: Uuid,
        /// Its classification (`null` once it is deleted).
        sync_status: Option<SyncStatus>,
        /// Its pending or in-progress operation.
        active_operation: Option<Box<Operation>>,
        /// When the host answered.
        timestamp: DateTime<Utc>,
    },
    /// On a pool's stream.
    Pool {
        /// The pool.
        pool_id: Uuid,
        /// `GET /api/pools/{pool_id}/status`'s body (`null` once the pool is gone).
        status: Option<PoolStatus>,
        /// When the host answered.
        timestamp: DateTime<Utc>,
    },
}

impl ServerMessage {
    /// The log position of an event message; `None` for session messages (`connected`,
    /// `status`, `pong`, `error`, `resync_required`).
    pub fn event_id(&self) -> Option<i64> {
        match self {
            ServerMessage::OperationCreated(e)
            | ServerMessage::OperationStarted(e)
            | ServerMessage::OperationProgress(e)
            | ServerMessage::OperationCompleted(e)
            | ServerMessage::OperationFailed(e)
            | ServerMessage::OperationCancelled(e)
            | ServerMessage::OperationCancelRequested(e) => Some(e.event_id),
            ServerMessage::SyncStatusChanged(e) => Some(e.event_id),
            ServerMessage::TargetChanged(e) => Some(e.event_id),
            ServerMessage::EndpointMoved(e) => Some(e.event_id),
            ServerMessage::EndpointDeleted(e) => Some(e.event_id),
            ServerMessage::EndpointRegistered(e) => Some(e.event_id),
            ServerMessage::EndpointOnline(e) | ServerMessage::EndpointOffline(e) => {
                Some(e.event_id)
            }
            ServerMessage::Connected { .. }
            | ServerMessage::ResyncRequired { .. }
            | ServerMessage::Status(_)
            | ServerMessage::Pong { .. }
            | ServerMessage::Error { .. } => None,
        }
    }

    /// The message for an operation event of `kind`; `None` if `kind` is not about an operation.
    pub fn for_operation(kind: EventType, event: OperationEvent) -> Option<Self> {
        Some(match kind {
            EventType::OperationCreated => ServerMessage::OperationCreated(event),
            EventType::OperationStarted => ServerMessage::OperationStarted(event),
            EventType::OperationProgress => ServerMessage::OperationProgress(event),
            EventType::OperationCompleted => ServerMessage::OperationCompleted(event),
            EventType::OperationFailed => ServerMessage::OperationFailed(event),
            EventType::OperationCancelled => ServerMessage::OperationCancelled(event),
            EventType::OperationCancelRequested => ServerMessage::OperationCancelRequested(event),
            EventType::SyncStatusChanged
            | EventType::TargetChanged
            | EventType::EndpointMoved
            | EventType::EndpointDeleted
            | EventType::EndpointRegistered
            | EventType::EndpointOnline
            | EventType::EndpointOffline => return None,
        })
    }

    /// The operation event's kind and operation, if this is one.
    pub fn operation(&self) -> Option<(EventType, &Operation)> {
        let (kind, event) = match self {
            ServerMessage::OperationCreated(e) => (EventType::OperationCreated, e),
            ServerMessage::OperationStarted(e) => (EventType::OperationStarted, e),
            ServerMessage::OperationProgress(e) => (EventType::OperationProgress, e),
            ServerMessage::OperationCompleted(e) => (EventType::OperationCompleted, e),
            ServerMessage::OperationFailed(e) => (EventType::OperationFailed, e),
            ServerMessage::OperationCancelled(e) => (EventType::OperationCancelled, e),
            ServerMessage::OperationCancelRequested(e) => (EventType::OperationCancelRequested, e),
            _ => return None,
        };
        Some((kind, &event.operation))
    }
}

/// What a subscriber may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRequest {
    /// Asks for a `pong`.
    Ping,
    /// Asks for a `status`.
    GetStatus,
}

/// A message a subscriber sends: `{"type": "ping"}` or `{"type": "get_status"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessage {
    /// What it asks.
    #[serde(rename = "type")]
    pub kind: ClientRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_spelled_alike_in_json_and_the_database() {
        for kind in EventType::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn connected_carries_its_head_apart_from_event_ids() {
        let hello = ServerMessage::Connected {
            head: 41,
            timestamp: DateTime::UNIX_EPOCH,
            endpoint_id: None,
            pool_id: Uuid::nil(),
        };
        let json = serde_json::to_value(&hello).unwrap();
        assert_eq!(json["type"], "connected");
        assert_eq!(json["head"], 41);
        assert!(json.get("event_id").is_none());
        assert_eq!(hello.event_id(), None);
        assert_eq!(
            serde_json::from_value::<ServerMessage>(json).unwrap(),
            hello
        );
    }

    #[test]
    fn an_error_carries_its_code_and_one_without_a_code_still_reads() {
        let limited = ServerMessage::Error {
            message: "too many requests".into(),
            code: Some(ERROR_RATE_LIMITED.into()),
        };
        let json = serde_json::to_value(&limited).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "RATE_LIMITED");
        assert_eq!(
            serde_json::from_value::<ServerMessage>(json).unwrap(),
            limited
        );
        let older = serde_json::json!({"type": "error", "message": "unknown"});
        let ServerMessage::Error { code, .. } = serde_json::from_value(older).unwrap() else {
            panic!("an error");
        };
        assert_eq!(code, None);
        let uncoded = ServerMessage::Error {
            message: "x".into(),
            code: None,
        };
        assert!(
            serde_json::to_value(&uncoded)
                .unwrap()
                .get("code")
                .is_none()
        );
    }

    #[test]
    fn an_event_message_is_flat_with_its_type_beside_its_fields() {
        let moved = ServerMessage::EndpointMoved(EndpointMoved {
            event_id: 7,
            timestamp: DateTime::UNIX_EPOCH,
            endpoint_id: Uuid::nil(),
            from_pool_id: Uuid::nil(),
            to_pool_id: Uuid::max(),
        });
        let json = serde_json::to_value(&moved).unwrap();
        assert_eq!(json["type"], "endpoint_moved");
        assert_eq!(json["event_id"], 7);
        assert_eq!(json["to_pool_id"], Uuid::max().to_string());
        assert_eq!(moved.event_id(), Some(7));
    }
}
