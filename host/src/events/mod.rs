//! Live events: PostgreSQL's `operation_events` log fanned out to WebSocket subscribers.
//!
//! The log is the source of truth. Each host LISTENs on `pacsync_events`, reads new rows in
//! commit order (`position`, assigned at commit by `ps_position_event`), and broadcasts them to
//! its local subscribers, so an event committed through one replica reaches clients of every
//! replica. A subscriber resuming with `after` first reads the log from the database, then
//! continues live, with no gap and no duplicate. A subscriber that falls more than the buffer
//! behind is told `resync_required` and disconnected instead of growing memory.
//!
//! What one caller can hold is bounded: streams per endpoint and per admin name ([`slots`]),
//! requests per stream (a rate, answered with an `error` message past it), and the backlog a
//! resume reads at once ([`backlog`], a page at a time however long the log).
//!
//! - [`hub`]: the one task per host that follows the log and broadcasts it;
//! - [`message`]: a log row in its wire form ([`pacsync_core::ServerMessage`]);
//! - [`session`]: one subscriber's connection, from `connected` to its close;
//! - [`backlog`]: what a resuming subscriber missed, page by page;
//! - [`slots`]: the open streams of each caller;
//! - [`presence`]: which endpoints' agents hold their streams open (online).

mod backlog;
mod hub;
mod message;
mod presence;
mod session;
mod slots;

pub use presence::{Held, Presence};

use std::time::Duration;

use pacsync_core::EventType;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::events::Event;

pub use hub::{CHANNEL, EventHub};
pub use message::message;
pub use session::{Credential, run_session};
pub use slots::{Holder, StreamSlot, StreamSlots};

/// Keepalive settings of a session.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// How often the server pings.
    pub ping_every: Duration,
    /// Silence after which the connection is considered dead.
    pub timeout: Duration,
}

/// What a stream session needs from the host.
#[derive(Clone)]
pub struct Streams {
    /// Connection pool, for backlogs and status answers.
    pub db: PgPool,
    /// This host's fan-out.
    pub hub: EventHub,
    /// Ping and silence limits.
    pub keepalive: Keepalive,
    /// Cancelled when the host shuts down.
    pub shutdown: CancellationToken,
    /// Requests one session may make (`get_status`, `ping`).
    pub messages: governor::Quota,
    /// Event log rows a resume reads per query.
    pub backlog_page: u32,
    /// This replica's endpoint streams, for presence.
    pub presence: Presence,
}

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

/// The pool an `endpoint_moved` event's endpoint left.
fn moved_from(event: &Event) -> Option<Uuid> {
    event.payload["from_pool_id"].as_str()?.parse().ok()
}

impl Scope {
    fn matches(&self, event: &Event) -> bool {
        match *self {
            Scope::Endpoint {
                endpoint_id,
                pool_id,
            } => {
                event.endpoint_id == Some(endpoint_id)
                    || (event.event_type == EventType::TargetChanged
                        && event.pool_id == Some(pool_id))
            }
            Scope::Pool { pool_id } => {
                event.pool_id == Some(pool_id)
                    || (event.event_type == EventType::EndpointMoved
                        && moved_from(event) == Some(pool_id))
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
            match event.event_type {
                EventType::EndpointDeleted => return false,
                EventType::EndpointMoved => *pool_id = event.pool_id.unwrap_or(*pool_id),
                _ => {}
            }
        }
        true
    }
}
