//! A row of the event log in its wire form.
//!
//! Operation events store the whole operation row (`to_jsonb(operations)`) and go out as the
//! API's [`Operation`](pacsync_core::Operation); every other event stores its own fields, which
//! go out beside `type`, `event_id` and `timestamp`. A row that does not fit its type (which
//! only a hand-edited log could hold) is logged and skipped rather than sent half-formed.

use pacsync_core::ServerMessage;
use pacsync_core::event::OperationEvent;
use serde_json::Value;

use crate::db::events::Event;
use crate::db::operations::OperationRow;

/// The message subscribers receive for `event`, or `None` if its row is malformed.
pub fn message(event: &Event) -> Option<ServerMessage> {
    let parsed = if event.event_type.is_about_an_operation() {
        serde_json::from_value::<OperationRow>(event.payload.clone()).map(|row| {
            let body = OperationEvent {
                event_id: event.position,
                timestamp: event.created_at,
                operation: row.into(),
            };
            ServerMessage::for_operation(event.event_type, body)
                .expect("an operation event's type is about an operation")
        })
    } else {
        let mut fields = event.payload.as_object().cloned().unwrap_or_default();
        fields.insert("type".into(), Value::from(event.event_type.as_str()));
        fields.insert("event_id".into(), Value::from(event.position));
        fields.insert(
            "timestamp".into(),
            serde_json::to_value(event.created_at).unwrap_or_default(),
        );
        serde_json::from_value::<ServerMessage>(Value::Object(fields))
    };
    match parsed {
        Ok(message) => Some(message),
        Err(e) => {
            tracing::warn!(position = event.position, error = %e, "skipping a malformed event");
            None
        }
    }
}
