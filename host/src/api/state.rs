//! What every handler can reach, and the parts of it each handler takes.
//!
//! Handlers take a sub-state with `State<T>` (axum's `FromRef`: the connection pool, or the
//! operations' [`Lifecycle`]) or the whole state, and pass domain functions only what those use:
//! the pool, the policies, the keys, the event hub. Nothing below `api` knows
//! this type, so imports flow one way: api → domain → db.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::auth::Keys;
use crate::config::Config;
use crate::events::EventHub;
use crate::operations::Lifecycle;
use crate::policy::Policies;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    /// Connection pool.
    pub db: PgPool,
    /// Resolved configuration.
    pub config: Arc<Config>,
    /// Token signing keys.
    pub keys: Arc<Keys>,
    /// Policy lookup.
    pub policies: Policies,
    /// Live event fan-out.
    pub events: EventHub,
    /// Cancelled when the host shuts down (closes WebSocket sessions with "going away").
    pub shutdown: CancellationToken,
    /// This replica's rate limiters and open-stream counts.
    pub limits: super::limits::Limits,
    /// This replica's endpoint streams, which make their endpoints online.
    pub presence: crate::events::Presence,
}

impl FromRef<AppState> for PgPool {
    fn from_ref(app: &AppState) -> Self {
        app.db.clone()
    }
}

impl FromRef<AppState> for Lifecycle {
    fn from_ref(app: &AppState) -> Self {
        Lifecycle {
            db: app.db.clone(),
            policies: app.policies.clone(),
            lease: app.config.lease,
            availability_max_age: app.config.availability_max_age,
        }
    }
}

impl AppState {
    /// What a stream session needs.
    pub fn streams(&self) -> crate::events::Streams {
        crate::events::Streams {
            db: self.db.clone(),
            hub: self.events.clone(),
            keepalive: self.config.keepalive,
            shutdown: self.shutdown.clone(),
            messages: self.config.limits.stream_messages.quota(),
            backlog_page: self.config.limits.backlog_page,
            presence: self.presence.clone(),
        }
    }
}
