//! Presence: whether an endpoint is online, meaning its agent holds its own event stream open
//! (the agent daemon always does), on any replica.
//!
//! Each replica counts the streams it holds per endpoint, opened with the endpoint's own token
//! (an admin watching an endpoint does not make it online). The first stream of an endpoint
//! marks it online in the database at once, with a lease ([`LEASE`]); every [`RENEW`] the replica
//! renews every endpoint it holds a stream of in one statement, so the cost is one query per
//! replica per interval, whatever the fleet's size. The last stream's close marks it offline.
//! `ps_endpoints_online` and `ps_endpoint_offline` announce each change as `endpoint_online` or
//! `endpoint_offline` on the pool's stream.
//!
//! How it fails: a stream closing on one replica while another replica still holds one for the
//! same endpoint marks it offline until that replica's next renewal (at most [`RENEW`], and it is
//! announced online again). A replica that dies stops renewing: its endpoints read as offline
//! once the lease runs out, without an `endpoint_offline` event. A database error while marking
//! is logged, and the next renewal repairs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db;

/// How long one marking vouches for an endpoint.
pub const LEASE: Duration = Duration::from_secs(90);
/// How often a replica renews the endpoints it holds streams of.
pub const RENEW: Duration = Duration::from_secs(30);

/// This replica's streams per endpoint.
#[derive(Clone, Default)]
pub struct Presence {
    held: Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// One stream's hold on its endpoint's presence; the last one dropped marks it offline.
pub struct Held {
    presence: Presence,
    db: PgPool,
    endpoint_id: Uuid,
}

impl Presence {
    /// Counts a stream of `endpoint_id` opened with its own token, marking the endpoint online if
    /// it is the replica's first.
    pub async fn hold(&self, db: &PgPool, endpoint_id: Uuid) -> Held {
        let first = {
            let mut held = self.held.lock().expect("presence lock");
            let count = held.entry(endpoint_id).or_default();
            *count += 1;
            *count == 1
        };
        if first && let Err(e) = db::endpoints::mark_online(db, &[endpoint_id], LEASE).await {
            tracing::warn!(error = %e, %endpoint_id, "cannot mark an endpoint online");
        }
        Held {
            presence: self.clone(),
            db: db.clone(),
            endpoint_id,
        }
    }

    /// Renews every endpoint this replica holds a stream of, every [`RENEW`], until shutdown.
    pub async fn renew(self, db: PgPool, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(RENEW);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let endpoints: Vec<Uuid> = self
                .held
                .lock()
                .expect("presence lock")
                .keys()
                .copied()
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            if let Err(e) = db::endpoints::mark_online(&db, &endpoints, LEASE).await {
                tracing::warn!(error = %e, "cannot renew the endpoints online here");
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let last = {
            let mut held = self.presence.held.lock().expect("presence lock");
            let count = held.get_mut(&self.endpoint_id).expect("a held endpoint");
            *count -= 1;
            let last = *count == 0;
            if last {
                held.remove(&self.endpoint_id);
            }
            last
        };
        if last {
            let (db, endpoint_id) = (self.db.clone(), self.endpoint_id);
            tokio::spawn(async move {
                if let Err(e) = db::endpoints::mark_offline(&db, endpoint_id).await {
                    tracing::warn!(error = %e, %endpoint_id, "cannot mark an endpoint offline");
                }
            });
        }
    }
}
