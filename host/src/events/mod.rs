//! Live events: PostgreSQL's `operation_events` log fanned out to WebSocket subscribers.
//!
//! The log is the source of truth. Each host LISTENs on `pacsync_events`, reads new rows in
//! commit order (`position`, assigned at commit by `ps_position_event`), and broadcasts them to
//! its local subscribers, so an event committed through one replica reaches clients of every
//! replica. A subscriber resuming with `after` first reads the log from the database, then
//! continues live, with no gap and no duplicate. A subscriber that falls more than the buffer
//! behind is told `resync_required` and disconnected instead of growing memory.
//!
//! - [`hub`]: the one task per host that follows the log and broadcasts it;
//! - [`message`]: a log row in its wire form ([`pacsync_core::ServerMessage`]);
//! - [`session`]: one subscriber's connection, from `connected` to its close.

mod hub;
mod message;
mod session;

use std::time::Duration;

use pacsync_core::EventType;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::events::Event;

pub use hub::{CHANNEL, EventHub};
pub use message::message;
pub use session::run_session;

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

/// The log between two positions for one scope, for resuming subscribers.
async fn backlog(
    db: &PgPool,
    scope: Scope,
    after: i64,
    upto: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    match scope {
        Scope::Pool { pool_id } => crate::db::events::of_pool(db, pool_id, after, upto).await,
        Scope::Endpoint {
            endpoint_id,
            pool_id,
        } => {
            // The endpoint may have changed pools within the range: read its own events and every
            // target change, then walk its moves to keep the target changes of the pool it was
            // in at each point.
            let events = crate::db::events::of_endpoint(db, endpoint_id, after, upto).await?;
            let first_pool = events
                .iter()
                .find(|e| {
                    e.event_type == EventType::EndpointMoved && e.endpoint_id == Some(endpoint_id)
                })
                .and_then(moved_from)
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
